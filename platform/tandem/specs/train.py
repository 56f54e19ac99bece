"""A training job: data, model, optimisation, scale, checkpoints and failures."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tandem.specs.base import Spec
from tandem.specs.dataset import DatasetSpec
from tandem.specs.model import ModelSpec

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class TrainParams(Spec):
    epochs: int = Field(10, ge=1, le=100_000)
    """Passes over the training split."""
    batch_size: int = Field(64, ge=1, le=1_000_000)
    """Rows per step on each worker."""
    lr: float = Field(1e-3, gt=0, le=10)
    """Learning rate."""
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    """Optimiser; ``sgd`` uses momentum 0.9."""
    weight_decay: float = Field(0.0, ge=0)
    """L2 penalty passed to the optimiser."""
    seed: int = Field(0, ge=0)
    """Seeds model initialisation, shuffling and the validation split."""


class ScalingSpec(Spec):
    num_workers: int = Field(2, ge=1, le=1024)
    """Data-parallel (DDP) workers."""
    use_gpu: bool = False
    """One GPU per worker, NCCL and CUDA tensors; gloo on CPU otherwise."""
    cpus_per_worker: float = Field(1.0, gt=0, le=256)
    """Logical CPUs each worker reserves in the train pool."""


class CheckpointSpec(Spec):
    every_epochs: int = Field(1, ge=1)
    """Write a checkpoint after every this many epochs (and after the last)."""
    keep: int = Field(3, ge=1)
    """Newest checkpoints retained in run storage."""


class FailureSpec(Spec):
    max_failures: int = Field(3, ge=-1)
    """Worker-group restarts from the latest checkpoint before the run fails (-1: unlimited)."""


class TrainJobSpec(Spec):
    name: str = Field(pattern=NAME_PATTERN)
    """Run name and registry model name (lowercase letters, digits, ``.``, ``_``, ``-``)."""
    dataset: DatasetSpec
    task: Literal["classification", "regression"] = "classification"
    model: ModelSpec
    train: TrainParams = Field(default_factory=TrainParams)
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    failure: FailureSpec = Field(default_factory=FailureSpec)
    storage: str | None = None
    """fsspec URI for runs and the registry; default: the Tandem home's storage."""
