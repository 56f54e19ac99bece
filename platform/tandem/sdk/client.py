"""``Client``: the whole model life cycle from Python, over the embedded or a remote cluster.

Every ``tandem`` command is a thin layer over a method here. Methods that only
read the registry never start a cluster; the rest start the embedded one when
it is not running yet (or use the remote one ``address`` names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from tandem.batch import BatchPredictSpec, BatchResult, input_columns, read_summary
from tandem.batch import preflight as batch_preflight
from tandem.cluster import JobInfo, list_jobs, require_shared
from tandem.cluster import attach as attach_job
from tandem.cluster import submit as submit_job
from tandem.cluster import up as start_cluster
from tandem.delivery import DeliveryRecord, deliver, deliveries
from tandem.errors import NotFoundError, SpecError
from tandem.evaluation import Evaluation, evaluate
from tandem.models import user_package
from tandem.preprocess import Raw, gather, token_matrix
from tandem.registry import InputSchema, Manifest, Registry
from tandem.sdk.entrypoints import batch_entrypoint, train_entrypoint
from tandem.sdk.handles import Job
from tandem.sdk.inference import DEFAULT_RETRY, InferenceClient, RetryPolicy
from tandem.serve import Deployed
from tandem.serve import deploy as deploy_app
from tandem.serve import deployments as list_deployments
from tandem.serve import endpoint as serve_endpoint
from tandem.serve import promote as promote_version
from tandem.serve import rollback as rollback_alias
from tandem.serve import undeploy as undeploy_app
from tandem.settings import Settings
from tandem.specs import (
    DeliverySpec,
    DeploymentSpec,
    Precision,
    TrainJobSpec,
    VersionRef,
    deployment_specs,
    load,
)
from tandem.train import (
    Reproduction,
    RunRecord,
    RunSummary,
    compare_versions,
    list_runs,
    load_run,
    reproduction_spec,
    storage_uri,
    with_resolved_paths,
    write_curves,
)
from tandem.train import preflight as train_preflight

SpecSource = str | Path | dict[str, Any]
Predictions = dict[str, np.ndarray]
"""Named model outputs: ``label`` and ``probabilities`` (classification) or ``prediction``."""


@dataclass(frozen=True)
class ModelSummary:
    """One registered model: its versions and where its aliases point."""

    name: str
    latest: int
    versions: list[int]
    aliases: dict[str, int]


WIRE_DTYPES = {"FP32": np.float32, "INT64": np.int64}
"""What a plain array is sent as for an input of this datatype (UINT8 images stay UINT8)."""


@dataclass(frozen=True)
class AliasMove:
    """An alias that moved (by ``promote`` or ``rollback``)."""

    model: str
    alias: str
    version: int
    previous: int | None
    """The version the alias named before; ``None`` when it was new."""


class Client:
    """Train, register, promote, deploy and score models on one Tandem cluster.

    ``address``: a remote cluster (its GCS ``host:6379``, or its dashboard
    ``http://host:8265``: either is enough, the other is derived with Ray's default
    port); default ``RAY_ADDRESS``, else the embedded cluster under ``TANDEM_HOME``.
    ``endpoint``: base URL of the HTTP inference endpoint; default the cluster's host
    and Serve's port (``TANDEM_PORT_BASE + 3``, 24003 by default), as ``tandem deploy``
    prints it. ``token``: bearer token for deployments with ``auth``.
    ``retry``: how ``predict`` rides through a replica change (see ``RetryPolicy``);
    ``None`` sends each request once.
    """

    def __init__(
        self,
        address: str | None = None,
        endpoint: str | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
    ) -> None:
        settings = Settings.from_env()
        self.settings = settings if address is None else settings.at(address)
        self._endpoint = endpoint
        self._token = token
        self._retry = retry
        self._inference: InferenceClient | None = None
        self._single_inputs: dict[tuple[str, VersionRef | None], tuple[str, str]] = {}

    # --- training -------------------------------------------------------------

    def submit(self, spec: TrainJobSpec | SpecSource, resume: bool = False) -> Job[Manifest]:
        """Check spec and data here, then submit the training job; returns at once.

        The job's result (``wait()``) is the registered version's manifest.
        """
        checked = with_resolved_paths(load(TrainJobSpec, spec), self.settings)
        train_preflight(checked)
        assert checked.storage is not None
        require_shared(self.settings, checked.storage)
        # A factory from the user's own package travels to the job like `ray job submit
        # --runtime-env-json '{"py_modules": [...]}'` would send it.
        package = user_package(checked.model.factory)
        modules = [str(package[1])] if package and package[1].is_dir() else None
        handle = submit_job(self.settings, train_entrypoint(checked, resume), py_modules=modules)
        registry = Registry(checked.storage)
        return Job(handle, lambda: _registered_by(registry, checked.name, handle.submission_id))

    def train(
        self, spec: TrainJobSpec | SpecSource, wait: bool = True, resume: bool = False
    ) -> Job[Manifest]:
        """``submit``, then (``wait=True``) block until the version is registered."""
        job = self.submit(spec, resume=resume)
        if wait:
            job.wait()
        return job

    def jobs(self) -> list[JobInfo]:
        """Jobs submitted to the cluster, oldest first."""
        return list_jobs(self.settings)

    def job(self, submission_id: str) -> Job[None]:
        """A handle on a job submitted earlier (``NotFoundError`` if the cluster has none)."""
        return Job(attach_job(self.settings, submission_id), lambda: None)

    def runs(self, name: str | None = None) -> list[RunSummary]:
        """Training runs in the default storage (of job ``name`` only), newest last.

        Reads run storage only: no cluster needed."""
        return list_runs(self.settings.storage_uri, name)

    def run(self, run_id: str) -> RunRecord:
        """One run's status, resolved spec and per-epoch metrics (``NotFoundError`` names
        the known runs)."""
        return load_run(self.settings.storage_uri, run_id)

    def compare_runs(self, run_ids: list[str], plot: str | Path | None = None) -> list[RunRecord]:
        """The runs' records, in the order given; ``plot``: also write their training
        curves there as a self-contained HTML file."""
        records = [self.run(run_id) for run_id in run_ids]
        if plot is not None:
            write_curves(records, plot)
        return records

    def reproduce(self, name: str, version: VersionRef, wait: bool = True) -> Job[Reproduction]:
        """Train ``version`` again from the spec its lineage kept (same data, checked by
        content fingerprint, same seed); the new version registers under ``name``.

        The job's result (``wait()``) compares the new version with the original: weights
        (identical, or the largest difference) and metrics.
        """
        original = self.get(name, version)
        spec = reproduction_spec(original)
        training = self.train(spec, wait=False)
        registry = Registry(storage_uri(spec, self.settings))

        def compared() -> Reproduction:
            manifest = training.wait()
            comparison = compare_versions(registry, name, original.version, manifest.version)
            return Reproduction(original, manifest, comparison)

        job = Job(attach_job(self.settings, training.submission_id), compared)
        if wait:
            job.wait()
        return job

    # --- registry -------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        return Registry.default(self.settings)

    def models(self) -> list[ModelSummary]:
        registry = self.registry
        summaries = []
        for name in registry.models():
            versions = registry.versions(name)
            summaries.append(ModelSummary(name, versions[-1], versions, registry.aliases(name)))
        return summaries

    def versions(self, name: str) -> list[Manifest]:
        """Every version of ``name``, oldest first."""
        registry = self.registry
        registry.resolve(name, "latest")  # NotFoundError naming the known models
        return [registry.manifest(name, v) for v in registry.versions(name)]

    def get(self, name: str, version: VersionRef = "latest") -> Manifest:
        """One version's manifest, by number, alias or ``"latest"``."""
        return self.registry.manifest(name, version)

    def promote(
        self,
        name: str,
        version: int,
        alias: str = "production",
        if_better: str | None = None,
        min_gain: float = 0.0,
    ) -> AliasMove:
        """Point ``alias`` at ``version``; a live deployment that serves the alias follows.

        ``if_better``: a metric (``accuracy``, ``loss``, ``rmse``, ``mae``, or training's
        ``val_accuracy`` and the like) on which the version must beat the alias's current
        version by at least ``min_gain``, both scored on the same data: the newest
        ``evaluate`` of the two, else one run first on the version's validation set. A tie
        or a loss raises ``RegistryError`` and the alias stays.
        """
        previous = promote_version(
            name, version, self.settings, alias, if_better, min_gain=min_gain
        )
        return AliasMove(name, alias, version, previous)

    def rollback(self, name: str, alias: str = "production") -> AliasMove:
        """Return ``alias`` to the version it named before."""
        before, after = rollback_alias(name, self.settings, alias)
        return AliasMove(name, alias, after, before)

    def evaluate(
        self,
        name: str,
        version: VersionRef,
        against: VersionRef | None = "production",
        data: str | None = None,
        label: str | None = None,
    ) -> Evaluation:
        """Score ``version`` and the version ``against`` names (``None``: ``version`` alone)
        on the same data, in the batch pool; the stored ``Evaluation``.

        ``data`` (a Parquet URI) and ``label`` (its label column) default to the version's
        validation set and label from its training spec. A measurement, never a refusal:
        ``promote(if_better=...)`` is what gates on it.
        """
        return evaluate(self.settings, name, version, against, data, label)

    # --- serving --------------------------------------------------------------

    def deploy(self, spec: DeploymentSpec | SpecSource) -> list[Deployed]:
        """Deploy (or update) a model; a Serve config file deploys each of its apps.

        Returns once the replicas serve the resolved versions.
        """
        return [deploy_app(parsed, self.settings) for parsed in deployment_specs(spec)]

    def undeploy(self, name: str) -> None:
        undeploy_app(name, self.settings)

    def deployments(self) -> list[Deployed]:
        return list_deployments(self.settings)

    # --- delivery -------------------------------------------------------------

    def deliver(
        self, spec: DeliverySpec | SpecSource, say: Callable[[str], None] = print
    ) -> DeliveryRecord:
        """Train or pick a candidate, evaluate it against the alias's version on the same
        data, shadow it, canary it step by step and promote it; any failed guard rolls
        traffic back. Runs here (as the Ray driver), reporting each step through ``say``;
        returns the stored record (``outcome``: promoted, rolled_back or failed)."""
        return deliver(spec, self.settings, say=say)

    def deliveries(self, name: str) -> list[DeliveryRecord]:
        """The deliveries of ``name``, oldest first, with every step's evidence."""
        return deliveries(self.registry, name)

    @property
    def endpoint(self) -> str:
        """Base URL of the HTTP (Open Inference Protocol v2) endpoint."""
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

    # --- batch ----------------------------------------------------------------

    def batch_predict(
        self,
        model: str,
        input_uri: str,
        output_uri: str,
        version: VersionRef = "latest",
        id_column: str | None = None,
        wait: bool = True,
        gpus_per_actor: float = 0.0,
        precision: Precision = "fp32",
    ) -> Job[BatchResult]:
        """Score Parquet at ``input_uri`` as a job in the batch pool; Parquet to ``output_uri``.

        ``gpus_per_actor`` > 0 scores on the batch pool's GPUs, in ``precision`` (fp32, or
        fp16 / bf16 on a GPU). The job's result (``wait()``) says rows and rows/s. For batch
        size and actor pool width, pass a whole ``BatchPredictSpec`` to ``submit_batch``.
        """
        fields = {"model": model, "version": version, "input": input_uri, "output": output_uri}
        spec = load(
            BatchPredictSpec,
            fields
            | {"id_column": id_column, "gpus_per_actor": gpus_per_actor, "precision": precision},
        )
        return self.submit_batch(spec, wait=wait)

    def submit_batch(
        self, spec: BatchPredictSpec | SpecSource, wait: bool = False
    ) -> Job[BatchResult]:
        """Check a batch spec here (model, version, input columns), then submit it."""
        checked = batch_preflight(load(BatchPredictSpec, spec), self.settings).spec
        assert checked.storage is not None
        require_shared(self.settings, checked.storage)
        handle = submit_job(self.settings, batch_entrypoint(checked))
        job = Job(handle, lambda: read_summary(checked.output))
        if wait:
            job.wait()
        return job

    # --- plumbing -------------------------------------------------------------

    def up(self) -> None:
        """Start the embedded cluster if it is not running (``tandem up``)."""
        start_cluster(self.settings)

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
        if version is not None:
            return self.get(name, version)
        for deployed in self.deployments():
            if deployed.spec.model == name:
                return self.get(name, deployed.live.default)
        raise NotFoundError(f"model {name!r} is not deployed; deploy it or pass version=")

    def close(self) -> None:
        if self._inference is not None:
            self._inference.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


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


def _registered_by(registry: Registry, name: str, submission_id: str) -> Manifest:
    """The version a training job registered, found by the job id in its lineage."""
    for version in reversed(registry.versions(name)):
        manifest = registry.manifest(name, version)
        if manifest.lineage.submission_id == submission_id:
            return manifest
    raise NotFoundError(
        f"job {submission_id} succeeded but registered no version of {name!r} in {registry.uri}"
    )
