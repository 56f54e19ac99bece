"""One registry version ready to answer: fitted preprocessing → model → outputs.

Pure torch, no Ray. A Serve replica holds one runner per live version, a batch-scoring
actor one for its version, and the plain benchmark server uses the same class, so all of
them compute exactly what training computed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from tandem.models.code import install_code
from tandem.models.factory import build_model
from tandem.preprocess import Raw, example_raw, model_array
from tandem.registry import Manifest, Registry

Outputs = dict[str, np.ndarray]


def size_torch_threads() -> int:
    """Use exactly the cores this process is pinned to (the serve pool's, in a replica)."""
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    return threads


class ModelRunner:
    """Inference for one model version.

    ``prepare`` turns one request's raw inputs into model arrays (and refuses bad values
    with ``InputError``), ``forward`` runs a batch of prepared arrays; ``predict`` is both.
    """

    def __init__(self, manifest: Manifest, weights: dict[str, torch.Tensor]) -> None:
        self.manifest = manifest
        model = build_model(
            manifest.factory, manifest.kwargs, manifest.inputs, manifest.out_features
        )
        # strict: a weights file that does not fit the factory's module is refused, not patched.
        model.load_state_dict(weights, strict=True)
        self._model = model.eval()
        classes = manifest.target.classes or list(range(manifest.out_features))
        self._classes = np.asarray(classes, dtype=np.int64)
        self._example = [example_raw(schema) for schema in manifest.inputs]
        self.check()  # warm-up: the first forward pass allocates and picks kernels

    @property
    def version(self) -> int:
        return self.manifest.version

    def prepare(self, raws: Sequence[Raw]) -> list[np.ndarray]:
        """Model arrays for one raw value per input, in the manifest's input order."""
        return [
            model_array(schema, raw)
            for schema, raw in zip(self.manifest.inputs, raws, strict=True)
        ]

    def forward(self, arrays: Sequence[np.ndarray]) -> Outputs:
        """Named outputs (``probabilities`` and ``label``, or ``prediction``) for prepared
        arrays of N rows each."""
        with torch.inference_mode():
            outputs = self._model(*(torch.from_numpy(a) for a in arrays))
        rows = len(arrays[0])
        if self.manifest.task == "regression":
            return {"prediction": outputs.reshape(rows, *self.manifest.target.shape).numpy()}
        probabilities = torch.softmax(outputs, dim=1).numpy()
        return {
            "probabilities": probabilities,
            "label": self._classes[probabilities.argmax(axis=1)],
        }

    def predict(self, raws: Sequence[Raw]) -> Outputs:
        return self.forward(self.prepare(raws))

    def check(self) -> None:
        """A real forward pass on the stored example; raises if the model is broken."""
        outputs = self.predict(self._example)
        for name, values in outputs.items():
            if not np.isfinite(values).all():
                raise RuntimeError(
                    f"{self.manifest.name} v{self.version}: {name} is not finite for the "
                    "stored example row; the weights are broken"
                )


def output_names(manifest: Manifest) -> tuple[str, ...]:
    """The outputs ``ModelRunner.forward`` returns for this model."""
    return ("probabilities", "label") if manifest.task == "classification" else ("prediction",)


def load_runner(registry: Registry, name: str, version: int | str) -> ModelRunner:
    """A runner for a stored version: weights and (if any) the user's code, both
    sha256-checked; the code is imported from its own folder, never unpickled."""
    manifest, weights = registry.load_weights(name, version)
    if manifest.code is not None:
        install_code(manifest.code, registry.load_code(name, manifest.version))
    return ModelRunner(manifest, weights)
