"""One registry version ready to answer: manifest preprocessing → model → label mapping.

Pure torch, no Ray. The replica (``tandem.serve.app``) owns one runner per live
version; the plain benchmark server uses the same class, so both do identical work.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from tandem.models import build_model
from tandem.registry.manifest import Manifest


def size_torch_threads() -> int:
    """Use exactly the cores this process is pinned to (the serve pool's, in a replica)."""
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    return threads


class ModelRunner:
    """Inference for one model version; call ``predict`` with raw float32 rows ``[N, F]``."""

    def __init__(self, manifest: Manifest, weights: dict[str, torch.Tensor]) -> None:
        self.manifest = manifest
        model = build_model(
            manifest.factory, manifest.kwargs, manifest.input.num_features, manifest.out_features
        )
        # strict: a weights file that does not fit the factory's module is refused, not patched.
        model.load_state_dict(weights, strict=True)
        self._model = model.eval()
        self._mean = torch.tensor(manifest.preprocessing.mean, dtype=torch.float32)
        self._std = torch.tensor(manifest.preprocessing.std, dtype=torch.float32)
        classes = manifest.classes or list(range(manifest.out_features))
        self._classes = np.asarray(classes, dtype=np.int64)
        self._example = np.asarray([manifest.example], dtype=np.float32)
        self.check()  # warm-up: the first forward pass allocates and picks kernels

    @property
    def version(self) -> int:
        return self.manifest.version

    def predict(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Named output tensors (see ``protocol.output_specs``) for ``rows``."""
        with torch.inference_mode():
            inputs = (torch.from_numpy(rows) - self._mean) / self._std
            outputs = self._model(inputs)
        if self.manifest.task == "regression":
            return {"prediction": outputs.reshape(-1).numpy()}
        probabilities = torch.softmax(outputs, dim=1).numpy()
        return {
            "probabilities": probabilities,
            "label": self._classes[probabilities.argmax(axis=1)],
        }

    def check(self) -> None:
        """A real forward pass on the stored example; raises if the model is broken."""
        outputs = self.predict(self._example)
        for name, values in outputs.items():
            if not np.isfinite(values).all():
                raise RuntimeError(
                    f"{self.manifest.name} v{self.version}: {name} is not finite for the "
                    "stored example row; the weights are broken"
                )
