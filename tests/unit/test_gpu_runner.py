"""The runner's device and precision, checked on the CPU: the CPU fp32 path computes exactly
what it computed before devices existed, half precision stays within tolerance and returns
fp32, and the device choice is a pure function. What only a GPU can show (the model on
``cuda``, pinned copies) is ``benchmarks/gpu_check.sh``'s job."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factories import make_manifest, make_runner
from tandem.errors import ClusterError
from tandem.models import ModelRunner, build_model
from tandem.models.runner import DTYPES, choose_device, device_here
from tandem.registry import InputSchema, Manifest, TargetSchema

ROWS = 64


def image_manifest(task: str = "classification") -> Manifest:
    """A [1, 8, 8] tensor input into ``image_cnn`` (conv, BatchNorm, pooling, linear)."""
    schema = InputSchema(
        name="pixels",
        kind="tensor",
        columns=["pixels"],
        shape=[1, 8, 8],
        dtype="float32",
        normalize="fitted",
        mean=[7.5],
        std=[4.0],
        example=[float(v % 16) for v in range(64)],
    )
    regression = task == "regression"
    target = TargetSchema(shape=[3]) if regression else TargetSchema(classes=list(range(10)))
    return make_manifest().model_copy(
        update={
            "factory": "tandem.models:image_cnn",
            "kwargs": {"channels": [8, 16]},
            "inputs": [schema],
            "task": task,
            "out_features": 3 if regression else 10,
            "target": target,
        }
    )


def trained_weights(manifest: Manifest) -> dict[str, torch.Tensor]:
    """Weights with BatchNorm statistics that are not the defaults, as after training."""
    torch.manual_seed(0)
    model = build_model(manifest.factory, manifest.kwargs, manifest.inputs, manifest.out_features)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 1, 8, 8))
    return model.state_dict()


def pixels(rows: int = ROWS) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 16, size=(rows, 1, 8, 8)).astype(np.float32)


def reference(manifest: Manifest, weights: dict[str, torch.Tensor], raw: np.ndarray) -> np.ndarray:
    """What ``ModelRunner.forward`` computed before it had a device: the module as built,
    on the CPU, in fp32, softmax of its logits."""
    model = build_model(manifest.factory, manifest.kwargs, manifest.inputs, manifest.out_features)
    model.load_state_dict(weights, strict=True)
    model.eval()
    arrays = ModelRunner(manifest, weights).prepare([raw])
    with torch.inference_mode():
        outputs = model(*(torch.from_numpy(a) for a in arrays))
    return torch.softmax(outputs, dim=1).numpy()


@pytest.mark.parametrize("explicit", [False, True])
def test_cpu_fp32_runner_computes_exactly_what_it_did_before(explicit: bool) -> None:
    manifest = image_manifest()
    weights = trained_weights(manifest)
    runner = (
        ModelRunner(manifest, weights, device="cpu", precision="fp32")
        if explicit
        else ModelRunner(manifest, weights)
    )
    raw = pixels()
    outputs = runner.predict([raw])
    expected = reference(manifest, weights, raw)
    assert outputs["probabilities"].dtype == np.float32
    np.testing.assert_array_equal(outputs["probabilities"], expected)  # bit for bit
    np.testing.assert_array_equal(outputs["label"], expected.argmax(axis=1))
    assert runner.model_device == torch.device("cpu") and runner.precision == "fp32"
    assert runner.describe() == "iris-mlp v0 on cpu (fp32)"


def test_cpu_runner_keeps_the_weights_it_was_given_untouched() -> None:
    runner = make_runner()
    assert all(p.dtype == torch.float32 for p in runner._model.parameters())
    assert all(p.device.type == "cpu" for p in runner._model.parameters())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_is_within_tolerance_and_answers_fp32(precision: str) -> None:
    # Spec validation keeps half precision off the CPU for users; the runner itself casts
    # the same way on any device, which is what this checks without a GPU.
    manifest = image_manifest()
    weights = trained_weights(manifest)
    fp32 = ModelRunner(manifest, weights).predict([pixels()])
    half = ModelRunner(manifest, weights, device="cpu", precision=precision)  # type: ignore[arg-type]
    outputs = half.predict([pixels()])
    assert all(p.dtype == DTYPES[precision] for p in half._model.parameters())
    assert outputs["probabilities"].dtype == np.float32
    np.testing.assert_allclose(outputs["probabilities"], fp32["probabilities"], atol=2e-2)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    agree = (outputs["label"] == fp32["label"]).mean()
    assert agree >= 0.95, f"{precision} labels agree with fp32 on {agree:.0%} of rows"
    assert half.describe().endswith(f"on cpu ({precision})")


def test_half_precision_regression_returns_fp32_predictions() -> None:
    manifest = image_manifest("regression")
    weights = trained_weights(manifest)
    fp32 = ModelRunner(manifest, weights).predict([pixels()])["prediction"]
    half = ModelRunner(manifest, weights, precision="bf16").predict([pixels()])["prediction"]
    assert half.dtype == np.float32 and half.shape == fp32.shape == (ROWS, 3)
    np.testing.assert_allclose(half, fp32, rtol=5e-2, atol=5e-2)


def test_half_precision_overflow_fails_the_warm_up_check() -> None:
    # fp16 tops out at 65504: weights that are fine in fp32 overflow to inf, and the
    # warm-up (the same check health checks run) refuses the runner rather than serve inf.
    runner = make_runner()
    big = {name: value * 1e4 for name, value in runner._model.state_dict().items()}
    ModelRunner(runner.manifest, big)  # fp32: finite
    with pytest.raises(RuntimeError, match="not finite"):
        ModelRunner(runner.manifest, big, precision="fp16")


def test_integer_inputs_are_not_cast_to_half_precision() -> None:
    runner = ModelRunner(*_tiny(), precision="bf16")
    tokens = runner._tensor(np.arange(6, dtype=np.int64).reshape(2, 3))
    values = runner._tensor(np.ones((2, 4), dtype=np.float32))
    assert tokens.dtype == torch.int64 and values.dtype == torch.bfloat16


def _tiny() -> tuple[Manifest, dict[str, torch.Tensor]]:
    runner = make_runner()
    return runner.manifest, runner._model.state_dict()


@pytest.mark.parametrize(
    ("gpus", "available", "device"),
    [(0, False, "cpu"), (0, True, "cpu"), (1, True, "cuda"), (0.5, True, "cuda")],
)
def test_a_process_that_reserved_a_gpu_runs_on_cuda(
    gpus: float, available: bool, device: str
) -> None:
    assert choose_device(gpus, available, "a replica of m", "0") == device


def test_a_reserved_gpu_cuda_cannot_see_fails_clearly() -> None:
    with pytest.raises(ClusterError) as info:
        choose_device(1, False, "a replica of digits-mlp", "")
    message = str(info.value)
    assert "a replica of digits-mlp reserved 1 GPU(s)" in message
    assert "torch.cuda.is_available() is false" in message
    assert "CUDA_VISIBLE_DEVICES=''" in message


def test_cpu_work_never_asks_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> bool:
        raise AssertionError("a CPU runner must not initialise CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", refuse)
    assert device_here(0, "a replica of m") == "cpu"


def test_device_here_on_this_cpu_machine_refuses_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(ClusterError, match="CUDA_VISIBLE_DEVICES='3'"):
        device_here(1, "a batch-scoring actor of m v1")
