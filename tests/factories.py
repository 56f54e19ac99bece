"""Small valid objects for tests (kept out of the package on purpose)."""

from __future__ import annotations

from pathlib import Path

import torch

from tandem.data.digits import FEATURES
from tandem.models import ModelRunner, build_model
from tandem.registry import Lineage, Manifest, TargetSchema, WeightsRef, tabular_input
from tandem.specs import CheckpointSpec, ModelSpec, TrainParams
from tandem.train.loop import LoopConfig

REPO = Path(__file__).resolve().parent.parent
"""The repository (shipped specs, deployments/, cluster.yaml)."""


def make_manifest(name: str = "iris-mlp", run_id: str = "run-0") -> Manifest:
    """A manifest as a trainer hands it to ``Registry.register``: version 0, no weights yet."""
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return Manifest(
        name=name,
        version=0,
        created_at="",
        task="classification",
        factory="tandem.models.zoo:mlp",
        kwargs={"in_features": 4, "out_features": 3, "hidden": [8]},
        out_features=3,
        inputs=[
            tabular_input(
                features, [5.8, 3.0, 3.7, 1.2], [0.8, 0.4, 1.8, 0.8], [5.1, 3.5, 1.4, 0.2]
            )
        ],
        target=TargetSchema(classes=[0, 1, 2]),
        metrics={"val_accuracy": 0.95},
        weights=WeightsRef(sha256="", bytes=0),
        lineage=Lineage(
            run_name="iris",
            run_id=run_id,
            spec_sha256="0" * 64,
            datasets=[],
            code_version="test",
            ray_version="2.60.0",
            torch_version=torch.__version__,
            python_version="3.11",
            checkpoint=f"memory://runs/{run_id}/checkpoint_000001",
        ),
    )


def make_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights of an mlp(4 → 8 → 3), different per seed."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "layers.0.weight": torch.randn(8, 4, generator=generator),
        "layers.0.bias": torch.randn(8, generator=generator),
        "layers.2.weight": torch.randn(3, 8, generator=generator),
        "layers.2.bias": torch.randn(3, generator=generator),
    }


def make_runner(version: int = 1, seed: int = 0, **changes: object) -> ModelRunner:
    """A loaded runner of ``make_manifest()``'s model as ``version``: mlp(4 → 8 → 3), its
    weights drawn after ``torch.manual_seed(seed)``; ``changes`` override manifest fields."""
    # The factory gets the widths from the manifest's input and outputs, not from kwargs.
    update = {"version": version, "kwargs": {"hidden": [8]}, **changes}
    manifest = make_manifest().model_copy(update=update)
    torch.manual_seed(seed)
    model = build_model(manifest.factory, manifest.kwargs, manifest.inputs, manifest.out_features)
    return ModelRunner(manifest, model.state_dict())


def loop_config(**changes: object) -> LoopConfig:
    """A training loop's config for ``make_manifest``'s model; ``changes`` override fields,
    those of the model, train and checkpoint sections by their own names."""
    sections: dict[str, dict[str, object]] = {
        "model": {"factory": "tandem.models:mlp", "kwargs": {"hidden": [8]}},
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "seed": 0},
        "checkpoint": {"every_epochs": 1},
    }
    fields = {"model": ModelSpec, "train": TrainParams, "checkpoint": CheckpointSpec}
    rest: dict[str, object] = {}
    for key, value in changes.items():
        owner = next((name for name, spec in fields.items() if key in spec.model_fields), None)
        if owner is None:
            rest[key] = value
        else:
            sections[owner][key] = value
    base = dict(inputs=make_manifest().inputs, out_features=3, task="classification", threads=1)
    return LoopConfig.model_validate({**base, **sections, **rest})


def digits_job_spec(name: str, epochs: int, lr: float = 0.003, seed: int = 0) -> dict[str, object]:
    """A training job over ``tandem data digits``' files (under ``TANDEM_HOME``): a small MLP."""
    return {
        "name": name,
        "dataset": {
            "train": "data/digits/train.parquet",
            "validation": "data/digits/validation.parquet",
            "features": FEATURES,
            "label": "label",
        },
        "model": {"factory": "tandem.models:mlp", "kwargs": {"hidden": [64]}},
        "train": {"epochs": epochs, "batch_size": 64, "lr": lr, "seed": seed},
        "scaling": {"num_workers": 2, "cpus_per_worker": 1},
    }
