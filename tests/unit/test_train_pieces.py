"""Checkpoint files, models and run bookkeeping: no Ray needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factories import make_manifest
from tandem.errors import NotFoundError, SpecError
from tandem.models import build_model, cnn, mlp
from tandem.train import checkpoint
from tandem.train.loop import LoopConfig, make_optimizer
from tandem.train.runs import RunStore


def loop_config(**changes: object) -> LoopConfig:
    base = dict(
        factory="tandem.models:mlp",
        kwargs={"hidden": [8]},
        inputs=make_manifest().inputs,
        out_features=3,
        task="classification",
        epochs=2,
        batch_size=4,
        lr=0.01,
        optimizer="adam",
        weight_decay=0.0,
        seed=0,
        every_epochs=1,
        threads=1,
    )
    return LoopConfig.model_validate({**base, **changes})


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
