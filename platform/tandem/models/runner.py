"""One registry version ready to answer: fitted preprocessing → model → outputs.

Pure torch, no Ray. A Serve replica holds one runner per live version, a batch-scoring
actor one for its version, and the plain benchmark server uses the same class, so all of
them compute exactly what training computed.

Preprocessing (``prepare``) always runs on the host in numpy; the model runs on the
runner's device (CPU, or the process's GPU) in its precision, and results come back to
the host as numpy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from tandem.errors import ClusterError
from tandem.models.code import install_code
from tandem.models.factory import build_model
from tandem.preprocess import Raw, example_raw, model_array
from tandem.registry import Manifest, Registry
from tandem.specs import Precision

Outputs = dict[str, np.ndarray]
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
"""The torch type of each ``precision``."""


def choose_device(gpus: float, cuda_available: bool, owner: str, visible: str | None) -> str:
    """``cuda`` for a process that reserved GPUs, else ``cpu``.

    Ray sets ``CUDA_VISIBLE_DEVICES`` of an actor that asks for ``num_gpus`` to the GPU(s)
    it was given, so ``cuda`` (device 0) is that GPU. A reserved GPU that CUDA cannot see
    is a broken node, not a reason to fall back to the CPU quietly: ``ClusterError``.
    ``owner`` names the process in the message (``replica of digits-mlp``), ``visible`` is
    its ``CUDA_VISIBLE_DEVICES``.
    """
    if gpus <= 0:
        return "cpu"
    if not cuda_available:
        raise ClusterError(
            f"{owner} reserved {gpus:g} GPU(s) but torch.cuda.is_available() is false there "
            f"(CUDA_VISIBLE_DEVICES={visible!r}, torch {torch.__version__}): install a CUDA "
            "build of torch on the GPU nodes and check the driver with nvidia-smi, or set "
            "the GPU count to 0 to run on CPU"
        )
    return "cuda"


def device_here(gpus: float, owner: str) -> str:
    """``choose_device`` for this process: asks torch whether CUDA is usable here."""
    available = gpus > 0 and torch.cuda.is_available()  # no CUDA start-up for CPU work
    return choose_device(gpus, available, owner, os.environ.get("CUDA_VISIBLE_DEVICES"))


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

    def __init__(
        self,
        manifest: Manifest,
        weights: dict[str, torch.Tensor],
        device: str | torch.device = "cpu",
        precision: Precision = "fp32",
    ) -> None:
        self.manifest = manifest
        self.device = torch.device(device)
        """Where the model runs: ``cpu`` or ``cuda`` (this process's GPU)."""
        self.precision: Precision = precision
        self._dtype = DTYPES[precision]
        self._cuda = self.device.type == "cuda"
        model = build_model(
            manifest.factory, manifest.kwargs, manifest.inputs, manifest.out_features
        )
        # strict: a weights file that does not fit the factory's module is refused, not patched.
        model.load_state_dict(weights, strict=True)
        # Weights are stored as fp32 CPU tensors (whatever device trained them); move and
        # cast only when asked, so the CPU fp32 runner is exactly the module as trained.
        if self._cuda:
            model = model.to(self.device)
        if self._dtype != torch.float32:
            model = model.to(self._dtype)
        self._model = model.eval()
        classes = manifest.target.classes or list(range(manifest.out_features))
        self._classes = np.asarray(classes, dtype=np.int64)
        self._example = [example_raw(schema) for schema in manifest.inputs]
        self.check()  # warm-up: the first forward pass allocates and picks kernels

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def model_device(self) -> torch.device:
        """The device the model's weights are on (what a placement check reports)."""
        first = next(self._model.parameters(), None)
        return first.device if first is not None else self.device

    def describe(self) -> str:
        """One line for logs: model, version, device and precision."""
        return f"{self.manifest.name} v{self.version} on {self.model_device} ({self.precision})"

    def prepare(self, raws: Sequence[Raw]) -> list[np.ndarray]:
        """Model arrays for one raw value per input, in the manifest's input order."""
        return [
            model_array(schema, raw) for schema, raw in zip(self.manifest.inputs, raws, strict=True)
        ]

    def forward(self, arrays: Sequence[np.ndarray]) -> Outputs:
        """Named outputs (``probabilities`` and ``label``, or ``prediction``) for prepared
        arrays of N rows each."""
        with torch.inference_mode():
            outputs = self._model(*(self._tensor(a) for a in arrays))
        rows = len(arrays[0])
        # Results leave the device as fp32 whatever the precision (no-ops on CPU fp32).
        if self.manifest.task == "regression":
            prediction = outputs.float().reshape(rows, *self.manifest.target.shape)
            return {"prediction": prediction.cpu().numpy()}
        probabilities = torch.softmax(outputs.float(), dim=1).cpu().numpy()
        return {
            "probabilities": probabilities,
            "label": self._classes[probabilities.argmax(axis=1)],
        }

    def predict(self, raws: Sequence[Raw]) -> Outputs:
        return self.forward(self.prepare(raws))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """One prepared array as the model's input: on its device, floats in its precision."""
        tensor = torch.from_numpy(array)
        if self._cuda:
            # Page-locked memory lets the copy run asynchronously (the host does not wait
            # for it); torch caches pinned blocks, so this is not an allocation per batch.
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        if self._dtype != torch.float32 and tensor.is_floating_point():
            tensor = tensor.to(self._dtype)  # on the device, after the copy: half the cost
        return tensor

    def check(self) -> None:
        """A real forward pass on the stored example, on the runner's device; raises if the
        model is broken (or, in half precision, overflows on that row)."""
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


def load_runner(
    registry: Registry,
    name: str,
    version: int | str,
    device: str | torch.device = "cpu",
    precision: Precision = "fp32",
) -> ModelRunner:
    """A runner for a stored version on ``device`` in ``precision``: weights and (if any)
    the user's code, both sha256-checked; the code is imported from its own folder, never
    unpickled."""
    manifest, weights = registry.load_weights(name, version)
    if manifest.code is not None:
        install_code(manifest.code, registry.load_code(name, manifest.version))
    return ModelRunner(manifest, weights, device, precision)
