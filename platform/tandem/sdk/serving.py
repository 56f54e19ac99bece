"""``Client`` methods for serving: deployments and online prediction over HTTP (v2).

``tandem.serve``'s control (Ray Serve, and torch through the evaluation gate) is imported
in the methods that use it: building a ``Client`` stays cheap for the CLI's other commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tandem.batch import input_columns
from tandem.errors import NotFoundError, SpecError
from tandem.preprocess import Raw, gather, token_matrix
from tandem.registry import InputSchema, Manifest
from tandem.sdk.base import ClientBase
from tandem.sdk.inference import InferenceClient, RetryPolicy
from tandem.sdk.types import Canary, Deployment, Predictions, Shadow, SpecSource
from tandem.specs import DeploymentSpec, VersionRef, deployment_specs

if TYPE_CHECKING:
    from tandem.serve import Deployed

WIRE_DTYPES = {"FP32": np.float32, "INT64": np.int64}
"""What a plain array is sent as for an input of this datatype (UINT8 images stay UINT8)."""


class ServingCalls(ClientBase):
    _endpoint: str | None
    _token: str | None
    _retry: RetryPolicy | None
    _inference: InferenceClient | None
    _single_inputs: dict[tuple[str, VersionRef | None], tuple[str, str]]

    def deploy(self, spec: DeploymentSpec | SpecSource) -> list[Deployment]:
        """Deploy (or update) a model; a Serve config file deploys each of its apps.

        Returns once the replicas serve the resolved versions.
        """
        from tandem.serve import deploy as serve_deploy

        return [
            self._deployment(serve_deploy(parsed, self.settings))
            for parsed in deployment_specs(spec)
        ]

    def undeploy(self, name: str) -> None:
        """Remove a model's deployment (``NotFoundError`` names the deployed ones)."""
        from tandem.serve import undeploy as serve_undeploy

        serve_undeploy(name, self.settings)

    def deployments(self) -> list[Deployment]:
        """Deployed models, by name, with the versions they serve."""
        from tandem.serve import deployments as serve_deployments

        return [self._deployment(found) for found in serve_deployments(self.settings)]

    @property
    def endpoint(self) -> str:
        """Base URL of the HTTP (Open Inference Protocol v2) endpoint."""
        from tandem.serve import endpoint as serve_endpoint

        return self._endpoint or serve_endpoint(self.settings)

    def predict(
        self,
        name: str,
        data: np.ndarray | pd.DataFrame | list[list[float]] | dict[str, Any],
        version: VersionRef | None = None,
    ) -> Predictions:
        """Score rows over HTTP (v2 infer); ``version=None`` uses the deployment's default.

        ``data``: a DataFrame holding the columns the model was trained on (each input is
        taken from its columns, as in training); a dict of one value per input name
        (arrays, or lists of encoded images); or, for a one-input model, an array ``[N, …]``
        (one row of a tabular model may be 1-D).
        """
        if isinstance(data, pd.DataFrame):
            inputs = frame_inputs(data, self._served_manifest(name, version))
        elif isinstance(data, dict):
            inputs = data
        else:
            input_name, datatype = self._single_input(name, version)
            rows = np.asarray(data)
            rows = rows[None, :] if rows.ndim == 1 and datatype != "BYTES" else rows
            if datatype in WIRE_DTYPES and rows.dtype != np.uint8:
                rows = rows.astype(WIRE_DTYPES[datatype])
            inputs = {input_name: rows}
        return self._http().infer(name, inputs, version=version)

    def _deployment(self, found: Deployed) -> Deployment:
        live, model = found.live, found.spec.model
        canary, shadow = live.canary, live.shadow
        return Deployment(
            model=model,
            status=found.status,
            default=live.default,
            canary=None if canary is None else Canary(canary.version, canary.weight),
            shadow=None if shadow is None else Shadow(shadow.version, shadow.share),
            served=tuple(sorted(live.served())),
            loaded=tuple(sorted(live.loaded())),
            url=f"{self.endpoint}/v2/models/{model}",
        )

    def _http(self) -> InferenceClient:
        if self._inference is None:
            self._inference = InferenceClient(self.endpoint, self._token, retry=self._retry)
        return self._inference

    def _single_input(self, name: str, version: VersionRef | None) -> tuple[str, str]:
        """Name and datatype of the served model's first input, from its metadata."""
        key = (name, version)
        if key not in self._single_inputs:
            first = self._http().metadata(name, version)["inputs"][0]
            self._single_inputs[key] = (str(first["name"]), str(first["datatype"]))
        return self._single_inputs[key]

    def _served_manifest(self, name: str, version: VersionRef | None) -> Manifest:
        from tandem.serve import deployments as serve_deployments

        registry = self._registry()
        if version is not None:
            return registry.manifest(name, version)
        for found in serve_deployments(self.settings):
            if found.spec.model == name:
                return registry.manifest(name, found.live.default)
        raise NotFoundError(f"model {name!r} is not deployed; deploy it or pass version=")


def frame_inputs(frame: pd.DataFrame, manifest: Manifest) -> dict[str, Raw]:
    """Each input's raw value from a DataFrame's columns, gathered as training gathers them."""
    columns = input_columns(manifest)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SpecError(
            "dataframe",
            [
                f"columns {missing[:10]} are missing; {manifest.name} v{manifest.version} "
                f"needs {len(columns)} columns: {columns[:10]}…"
            ],
        )
    batch = {c: frame[c].to_numpy() for c in columns}
    return {schema.name: request_value(schema, gather(schema, batch)) for schema in manifest.inputs}


def request_value(schema: InputSchema, raw: Raw) -> np.ndarray | list[bytes]:
    """A raw input in the form a v2 request carries it: encoded images as a list, token
    lists zero-padded to ``max_length`` (and truncated, as training does); the server
    applies the fitted preprocessing and checks the ids against the vocabulary."""
    if schema.kind == "image":
        return [bytes(b) for b in raw]
    if schema.kind == "sequence":
        return token_matrix(schema.model_copy(update={"vocab_size": None}), raw)
    return np.asarray(raw)
