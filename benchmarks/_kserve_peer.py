"""KServe's Python model server as the peer a user would pick instead of Tandem.

The peer serves the same registry model on the same cores over the same protocol (Open
Inference Protocol v2, JSON over HTTP, one worker). It runs from a venv of its own
(``.venv-kserve``), so kserve's pins cannot disturb the project's Ray and torch; Tandem is
not installed there, so the model travels as a TorchScript file that does what a replica
does for a one-input tabular classifier (``ModelRunner.predict``).

    python = ensure_venv()
    model = export_model(home, "digits", Path(tmp, "digits.pt"))
    with kserve_server(python, model, "digits", port, cores=[1]) as url:
        ...  # POST v2 JSON to url

The server itself is ``_kserve_model_server.py`` beside this file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
SERVER_SCRIPT = Path(__file__).resolve().with_name("_kserve_model_server.py")
# The same torch as the project (a CPU wheel lies on this machine's disk; an unpinned torch
# would pull the CUDA build, GBs). kserve pinned so the peer's figures can be reproduced.
REQUIREMENTS = ["kserve==0.21.0", "torch==2.13.0"]
MARKER = "tandem-peer-installed.json"
"""Written into the venv after a successful install: the requirements it holds."""


def ensure_venv(path: Path = REPO / ".venv-kserve") -> Path:
    """The python of a venv holding kserve and torch, created and filled if missing."""
    python = path / "bin" / "python"
    marker = path / MARKER
    if marker.exists() and json.loads(marker.read_text()) == REQUIREMENTS:
        return python
    if not python.exists():
        print(f"kserve peer: creating a venv at {path}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    print(f"kserve peer: installing {' '.join(REQUIREMENTS)} into {path}", flush=True)
    started = time.monotonic()
    # -qq: errors only (a plain -q still prints a warning per index folder pip's config
    # names that lacks the package, dozens here).
    subprocess.run([str(python), "-m", "pip", "install", "-qq", *REQUIREMENTS], check=True)
    marker.write_text(json.dumps(REQUIREMENTS))
    print(f"kserve peer: installed in {time.monotonic() - started:.0f}s", flush=True)
    return python


class _Exported(nn.Module):
    """Raw rows ``[N, F]`` → (probabilities, label): ``ModelRunner.predict`` for one
    tabular or tensor input (standardise, model, softmax, class of the argmax)."""

    mean: Tensor
    std: Tensor
    classes: Tensor

    def __init__(self, model: nn.Module, mean: Tensor, std: Tensor, classes: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("classes", classes)

    def forward(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        probabilities = torch.softmax(self.model((rows - self.mean) / self.std).float(), dim=1)
        return probabilities, self.classes[probabilities.argmax(dim=1)]


def export_model(settings_home: Path, name: str, out: Path) -> Path:
    """Write ``name``'s latest version in the registry under ``settings_home`` as a
    TorchScript file ``out`` that needs only torch to serve; returns ``out``."""
    from tandem.models import build_model, install_code
    from tandem.registry import Registry
    from tandem.settings import Settings

    registry = Registry.default(replace(Settings.from_env(), home=settings_home.resolve()))
    manifest, weights = registry.load_weights(name, "latest")
    schema = manifest.inputs[0]
    if (
        manifest.task != "classification"
        or len(manifest.inputs) != 1
        or schema.kind
        not in (
            "tabular",
            "tensor",
        )
    ):
        raise ValueError(
            f"{name}: the kserve peer serves classifiers with one tabular or tensor input "
            f"(got a {manifest.task} model with inputs {[i.kind for i in manifest.inputs]})"
        )
    if manifest.code is not None:
        install_code(manifest.code, registry.load_code(name, manifest.version))
    model = build_model(manifest.factory, manifest.kwargs, manifest.inputs, manifest.out_features)
    model.load_state_dict(weights, strict=True)
    fitted = schema.normalize == "fitted" and schema.mean is not None and schema.std is not None
    means = schema.mean if fitted and schema.mean else [0.0]
    stds = schema.std if fitted and schema.std else [1.0]
    # One statistic per slot of axis 1 (feature or channel), as tandem.preprocess.standardise.
    slots = (1, len(means), *[1] * (len(schema.shape) - 1))
    mean = torch.tensor(means, dtype=torch.float32).reshape(slots)
    std = torch.tensor(stds, dtype=torch.float32).reshape(slots)
    classes = torch.tensor(
        manifest.target.classes or list(range(manifest.out_features)), dtype=torch.int64
    )
    wrapper = _Exported(model, mean, std, classes).eval()
    example = torch.tensor(schema.example, dtype=torch.float32).reshape(1, *schema.shape)
    # Traced, not scripted: tracing runs the factory's module (and build_model's flattening
    # hook) as Python and records the ops, so any factory exports the same way.
    with torch.inference_mode():
        traced = torch.jit.trace(wrapper, example.repeat(2, *[1] * len(schema.shape)))
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {"name": name, "version": manifest.version, "shape": schema.shape}
    torch.jit.save(traced, str(out), _extra_files={"tandem.json": json.dumps(info)})
    return out


@contextmanager
def kserve_server(
    python: Path, model_file: Path, name: str, port: int, cores: list[int]
) -> Iterator[str]:
    """KServe's model server (one worker, HTTP on loopback ``port``, no gRPC) serving
    ``model_file`` as ``name``, pinned to ``cores``; yields the v2 infer URL."""
    process = subprocess.Popen(
        [
            str(python),
            str(SERVER_SCRIPT),
            f"--model_file={model_file}",
            f"--model_name={name}",
            f"--http_port={port}",
        ],
        preexec_fn=lambda: os.sched_setaffinity(0, set(cores)),
    )
    base = f"http://127.0.0.1:{port}/v2/models/{name}"
    try:
        _wait_ready(f"{base}/ready", process, timeout=120)
        yield f"{base}/infer"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the kserve server exited with {process.returncode} before ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass  # not listening yet, or the model not loaded (503): ask again
        time.sleep(0.2)
    raise RuntimeError(f"the kserve server did not answer 200 at {url} within {timeout:.0f}s")
