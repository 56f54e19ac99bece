"""Checkpoint files, models and run bookkeeping: no Ray needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from factories import loop_config, make_manifest
from tandem.data import LABEL_KEY, input_key
from tandem.errors import NotFoundError, SpecError
from tandem.models import ModelRunner, build_model, cnn, mlp
from tandem.registry import TargetSchema
from tandem.train import checkpoint
from tandem.train.loop import (
    ShardBatches,
    epoch_metrics,
    evaluate,
    make_optimizer,
    train_epoch,
)
from tandem.train.runs import RunStore


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 4, generator=generator)
    y = torch.randint(0, 3, (8,), generator=generator)
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_checkpoint_round_trip_resumes_bit_for_bit(tmp_path: Path, kind: str) -> None:
    cfg = loop_config(optimizer=kind)
    torch.manual_seed(0)
    model = mlp(4, 3, hidden=[8])
    optimizer = make_optimizer(model.parameters(), cfg)
    step(model, optimizer, 1)
    checkpoint.save(
        tmp_path, checkpoint.TrainState(2, model.state_dict(), optimizer.state_dict(), {"val": 0.5})
    )
    restored_model = mlp(4, 3, hidden=[8])
    restored_optimizer = make_optimizer(restored_model.parameters(), cfg)
    state = checkpoint.load(tmp_path)
    restored_model.load_state_dict(state.model)
    restored_optimizer.load_state_dict(state.optimizer)
    assert state.epoch == 2 and state.metrics == {"val": 0.5}
    step(model, optimizer, 2)
    step(restored_model, restored_optimizer, 2)
    for a, b in zip(model.parameters(), restored_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_files_are_safetensors_and_json(tmp_path: Path) -> None:
    model = mlp(4, 3, hidden=[8])
    optimizer = make_optimizer(model.parameters(), loop_config())
    step(model, optimizer, 0)
    checkpoint.save(
        tmp_path, checkpoint.TrainState(0, model.state_dict(), optimizer.state_dict(), {})
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "meta.json",
        "model.safetensors",
        "optimizer.safetensors",
    ]


def test_zoo_models_map_features_to_outputs() -> None:
    x = torch.randn(5, 64)
    assert mlp(64, 10)(x).shape == (5, 10)
    assert cnn(64, 10)(x).shape == (5, 10)
    tabular = make_manifest().inputs[0].model_copy(update={"shape": [64]})
    assert build_model("tandem.models:mlp", {"hidden": [16]}, [tabular], 1)(x).shape == (5, 1)


def test_cnn_refuses_non_square_inputs() -> None:
    with pytest.raises(ValueError, match="not n×n"):
        cnn(10, 2)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("nowhere.module:mlp", "cannot import module 'nowhere.module'"),
        ("tandem.models:missing", "has no callable 'missing'"),
    ],
)
def test_bad_factory_names_the_field(factory: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        build_model(factory, {}, make_manifest().inputs, 2)
    assert info.value.problems[0].startswith("model.factory: ")
    assert message in info.value.problems[0]


def test_resume_picks_the_last_unfinished_run(tmp_path: Path) -> None:
    runs = RunStore.open(str(tmp_path), "job")
    runs.set_status("job-1", "failed")
    runs.set_status("job-2", "finished")
    assert runs.last_unfinished("job") == "job-1"
    runs.set_status("job-1", "finished")
    with pytest.raises(NotFoundError, match="no unfinished run of 'job'"):
        runs.last_unfinished("job")


def two_input_regressor(inputs: dict[str, dict[str, object]], out_features: int) -> torch.nn.Module:
    """A user-style factory: a tensor input and a tabular input, vector output."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(2 * 2 + 3, out_features)

        def forward(self, grid: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
            return self.head(torch.cat([grid.flatten(1), stats], dim=1))

    return Net()


def test_the_loop_learns_a_two_input_vector_regression_without_ray() -> None:
    """The step loop, evaluation and metrics for several inputs and a [K] target, on a
    shard whose tensors are already cached (what every epoch after the first sees)."""
    grid = (
        make_manifest()
        .inputs[0]
        .model_copy(update={"name": "grid", "kind": "tensor", "shape": [1, 2, 2]})
    )
    stats = make_manifest().inputs[0].model_copy(update={"name": "stats", "shape": [3]})
    cfg = loop_config(
        factory=f"{__name__}:two_input_regressor",
        kwargs={},
        inputs=[grid.model_dump(), stats.model_dump()],
        out_features=2,
        task="regression",
        batch_size=16,
        lr=0.05,
    )
    generator = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(64, 1, 2, 2, generator=generator), torch.randn(64, 3, generator=generator)
    y = torch.stack([x0.flatten(1).sum(1), x1[:, 0] - x1[:, 2]], dim=1)
    shard = ShardBatches(None, cfg, torch.device("cpu"), cfg.train.batch_size, shuffle=True)
    shard.cached = {input_key(0): x0, input_key(1): x1, LABEL_KEY: y}
    model = build_model(cfg.model.factory, cfg.model.kwargs, cfg.inputs, cfg.out_features)
    optimizer = make_optimizer(model.parameters(), cfg)
    device = torch.device("cpu")
    before = epoch_metrics(
        0,
        train_epoch(model, optimizer, shard, cfg, device, 0),
        evaluate(model, shard, cfg, device, 0),
        cfg.task,
        device,
    )
    for epoch in range(1, 40):
        stats_ = train_epoch(model, optimizer, shard, cfg, device, epoch)
    after = epoch_metrics(39, stats_, evaluate(model, shard, cfg, device, 39), cfg.task, device)
    assert stats_["samples"] == 64
    assert after["val_rmse"] < 0.1 < before["val_rmse"]


def test_a_vector_regression_version_serves_n_by_k_predictions() -> None:
    grid = (
        make_manifest()
        .inputs[0]
        .model_copy(
            update={"name": "grid", "kind": "tensor", "shape": [1, 2, 2], "example": [0.0] * 4}
        )
    )
    stats = make_manifest().inputs[0].model_copy(update={"name": "stats", "shape": [3]})
    grid, stats = (s.model_copy(update={"normalize": "none"}) for s in (grid, stats))
    manifest = make_manifest().model_copy(
        update={
            "task": "regression",
            "factory": f"{__name__}:two_input_regressor",
            "kwargs": {},
            "inputs": [grid, stats.model_copy(update={"example": [1.0, 2.0, 3.0]})],
            "target": TargetSchema(shape=[2]),
            "out_features": 2,
        }
    )
    model = build_model(manifest.factory, {}, manifest.inputs, 2)
    runner = ModelRunner(manifest, model.state_dict())
    out = runner.predict([np.zeros((5, 1, 2, 2), np.uint8), np.ones((5, 3), np.float32)])
    assert list(out) == ["prediction"] and out["prediction"].shape == (5, 2)
