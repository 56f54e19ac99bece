"""Checkpoints carry no device: weights trained anywhere load on the CPU (and from there on
any device), with plain safetensors and no ``map_location``. The CPU half of the proof; the
GPU check script trains on CUDA and serves the result on CPU and vice versa."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from factories import loop_config, make_manifest
from tandem.models import ModelRunner, build_model
from tandem.train import checkpoint
from tandem.train.loop import LoopConfig, _move_optimizer_state, make_optimizer


def config() -> LoopConfig:
    return loop_config(epochs=1, batch_size=8)


def trained(cfg: LoopConfig) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model(cfg.model.factory, cfg.model.kwargs, cfg.inputs, cfg.out_features)
    optimizer = make_optimizer(model.parameters(), cfg)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    return model, optimizer


def header(path: Path) -> dict[str, dict[str, object]]:
    """A safetensors file's JSON header: per tensor its dtype, shape and byte range."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return dict(json.loads(data[8 : 8 + length]))


def test_checkpoint_files_hold_no_device(tmp_path: Path) -> None:
    model, optimizer = trained(config())
    # What a DDP worker hands over: live parameters (requiring grad), some not contiguous.
    state = dict(model.state_dict(keep_vars=True))
    state["0.weight"] = state["0.weight"].t().contiguous().t()  # a transposed view
    checkpoint.save(tmp_path, checkpoint.TrainState(0, state, optimizer.state_dict(), {}))
    for name in (checkpoint.MODEL_FILE, checkpoint.OPTIMIZER_FILE):
        for key, entry in header(tmp_path / name).items():
            if key != "__metadata__":
                assert set(entry) == {"dtype", "shape", "data_offsets"}, entry


def test_weights_load_on_cpu_without_map_location(tmp_path: Path) -> None:
    cfg = config()
    model, optimizer = trained(cfg)
    checkpoint.save(
        tmp_path, checkpoint.TrainState(0, model.state_dict(), optimizer.state_dict(), {})
    )
    weights = load_file(str(tmp_path / checkpoint.MODEL_FILE))  # no device argument
    assert all(t.device.type == "cpu" and not t.requires_grad for t in weights.values())
    for name, value in model.state_dict().items():
        assert torch.equal(weights[name], value)
    restored = checkpoint.load(tmp_path)
    tensors = [v for s in restored.optimizer["state"].values() for v in s.values()]
    assert all(t.device.type == "cpu" for t in tensors if isinstance(t, torch.Tensor))

    # The registry stores exactly these weights: a CPU runner serves them unchanged.
    manifest = make_manifest().model_copy(update={"kwargs": cfg.model.kwargs})
    runner = ModelRunner(manifest, restored.model)
    rows = np.asarray([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    arrays = runner.prepare([rows])
    with torch.inference_mode():
        expected = torch.softmax(model.eval()(torch.from_numpy(arrays[0])), dim=1).numpy()
    np.testing.assert_array_equal(runner.forward(arrays)["probabilities"], expected)


def test_resumed_optimizer_state_follows_the_model_to_its_device(tmp_path: Path) -> None:
    # The loop restores on the CPU, then moves model and optimizer state to the worker's
    # device. ``meta`` stands in for ``cuda`` here: every moment tensor moves, Adam's
    # step counter stays on the CPU, where torch keeps it for non-capturable Adam.
    cfg = config()
    model, optimizer = trained(cfg)
    checkpoint.save(
        tmp_path, checkpoint.TrainState(0, model.state_dict(), optimizer.state_dict(), {})
    )
    state = checkpoint.load(tmp_path)
    fresh = build_model(cfg.model.factory, cfg.model.kwargs, cfg.inputs, cfg.out_features)
    fresh.load_state_dict(state.model)
    resumed = make_optimizer(fresh.parameters(), cfg)
    resumed.load_state_dict(state.optimizer)
    _move_optimizer_state(resumed, torch.device("meta"))
    for values in resumed.state.values():
        assert values["step"].device.type == "cpu"
        assert values["exp_avg"].device.type == values["exp_avg_sq"].device.type == "meta"
