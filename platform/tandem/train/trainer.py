"""The Ray Train seam on the driver: a ``TorchTrainer`` in the train pool. Every driver-side
Ray Train call lives here; what runs on each worker (its context, dataset shard,
checkpoints and reports) is ``tandem.train.loop``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ray.data import ExecutionOptions
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

import tandem.train.checkpoint as checkpoint
from tandem.cluster import OFF_SERVE, pool_resources
from tandem.data import PreparedData
from tandem.specs import Pool, TrainJobSpec
from tandem.train.loop import LoopConfig, train_loop_per_worker
from tandem.train.runs import RunStore

CONTROLLER_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
CONTROLLER_POLL_S = "0.5"
"""How often Ray Train's controller polls the workers (Ray's default: 2 s). Each worker's
``report`` blocks until the controller has taken the previous one, so with the default an
epoch can never be shorter than 2 s: small jobs spent most of their time waiting for it."""


@dataclass(frozen=True)
class FitResult:
    best: checkpoint.TrainState
    best_uri: str
    history: list[dict[str, float]]
    """Metrics of the retained checkpoints, oldest epoch first."""


def score_metric(task: str) -> tuple[str, Literal["max", "min"]]:
    """The validation metric that ranks checkpoints, and whether higher is better."""
    return ("val_accuracy", "max") if task == "classification" else ("val_rmse", "min")


def loop_config(
    spec: TrainJobSpec, data: PreparedData, runs: RunStore | None = None, run_id: str | None = None
) -> LoopConfig:
    """What the workers get; with ``runs`` and ``run_id``, rank 0 records each epoch there."""
    return LoopConfig(
        model=spec.model,
        inputs=data.inputs,
        out_features=data.out_features,
        task=spec.task,
        train=spec.train,
        checkpoint=spec.checkpoint,
        threads=max(1, int(spec.scaling.cpus_per_worker)),
        name=spec.name,
        run_id=run_id,
        runs_uri=None if runs is None else runs.uri,
    )


def ordered_ingest() -> ExecutionOptions:
    """Ray Train's ingest options with ``preserve_order``: each worker gets the same rows in
    the same order every run, so the same seed trains the same weights (Ray's recipe for
    reproducible ingest; it also ignores shard locality)."""
    options = DataConfig.default_ingest_options()
    options.preserve_order = True
    # These options replace the datasets' own: keep the workers' ingest off serve nodes too.
    options.label_selector = dict(OFF_SERVE)
    return options


def fit(spec: TrainJobSpec, data: PreparedData, runs: RunStore, run_id: str) -> FitResult:
    """Train with ``num_workers`` DDP workers; a run id with checkpoints resumes from them."""
    metric, order = score_metric(spec.task)
    # Ray Train hands the driver's value on to its controller; a user's own value wins.
    os.environ.setdefault(CONTROLLER_POLL_ENV, CONTROLLER_POLL_S)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config(spec, data, runs, run_id).model_dump(mode="json"),
        torch_config=TorchConfig(backend="nccl" if spec.scaling.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=spec.scaling.num_workers,
            use_gpu=spec.scaling.use_gpu,
            resources_per_worker={
                "CPU": spec.scaling.cpus_per_worker,
                **pool_resources(Pool.TRAIN),
            },
        ),
        run_config=RunConfig(
            name=run_id,
            storage_path=runs.uri if runs.arrow_fs is None else runs.root,
            storage_filesystem=runs.arrow_fs,
            failure_config=FailureConfig(max_failures=spec.failure.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=spec.checkpoint.keep,
                checkpoint_score_attribute=metric,
                checkpoint_score_order=order,
            ),
        ),
        datasets={"train": data.train, "validation": data.validation},
        dataset_config=DataConfig(execution_options=ordered_ingest()),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    assert result.best_checkpoints, "the loop always checkpoints the last epoch"
    best_checkpoint, _ = max(
        result.best_checkpoints,
        key=lambda pair: pair[1][metric] if order == "max" else -pair[1][metric],
    )
    with best_checkpoint.as_directory() as folder:
        best = checkpoint.load(Path(folder))
    history = sorted((dict(m) for _, m in result.best_checkpoints), key=lambda m: m["epoch"])
    return FitResult(best=best, best_uri=best_checkpoint.path, history=history)
