"""The training loop each Ray Train worker runs. Reads top to bottom.

Per epoch: stream this worker's shard as torch batches (prefetched, so reading
overlaps compute), step the DDP model, time how long each step waited for its
batch, evaluate on the validation shard, then report metrics and (every
``checkpoint.every_epochs``) a checkpoint. On restart it resumes after the
last checkpointed epoch.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict
from torch import nn

import tandem.train.checkpoint as checkpoint
from tandem.data import LABEL_KEY, input_key
from tandem.models import build_model
from tandem.registry import InputSchema
from tandem.specs import CheckpointSpec, ModelSpec, TrainParams
from tandem.train.gauges import TrainGauges
from tandem.train.runs import RunStore

PREFETCH_BATCHES = 4
# A worker keeps its shard's tensors after the first epoch when they fit in
# this budget: later epochs reshuffle them locally instead of re-running the
# Ray Data pipeline, whose per-epoch start-up dominated small datasets.
SHARD_CACHE_MAX_BYTES = 256 * 1024**2


class LoopConfig(BaseModel):
    """Everything the loop needs, passed to workers as a plain dict."""

    model_config = ConfigDict(extra="forbid")

    model: ModelSpec
    """The job's factory and its kwargs."""
    inputs: list[InputSchema]
    """Fitted input schemas, in ``forward`` order (batches hold them as ``x0``, ``x1``...)."""
    out_features: int
    task: Literal["classification", "regression"]
    train: TrainParams
    """The job's epochs, batch size, optimiser and seed, as its spec says."""
    checkpoint: CheckpointSpec
    threads: int
    name: str = ""
    """The job's (and model's) name; tags the Prometheus gauges."""
    run_id: str | None = None
    """The run's id; tags the gauges and names its per-epoch metrics file."""
    runs_uri: str | None = None
    """The job's run folder (``RunStore.uri``), where rank 0 rewrites
    ``<run_id>.metrics.jsonl`` after each epoch; ``None``: no file."""


class ShardBatches:
    """Torch batches of one worker's shard, epoch after epoch.

    The first epoch streams from Ray Data (prefetching, so reads overlap
    compute) and records the tensors while they fit ``SHARD_CACHE_MAX_BYTES``;
    later epochs reshuffle the recorded rows in memory. Shards that do not fit
    stream every epoch.
    """

    def __init__(
        self, shard: Any, cfg: LoopConfig, device: torch.device, batch_size: int, shuffle: bool
    ) -> None:
        self.shard, self.cfg, self.device = shard, cfg, device
        self.batch_size, self.shuffle = batch_size, shuffle
        self.cached: dict[str, torch.Tensor] | None = None

    def epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        if self.cached is not None:
            yield from self._from_cache(epoch)
            return
        recorded: list[dict[str, torch.Tensor]] | None = []
        size = 0
        shuffle = (
            {
                "local_shuffle_buffer_size": self.batch_size * 8,
                "local_shuffle_seed": self.cfg.train.seed + epoch,
            }
            if self.shuffle
            else {}
        )
        for batch in self.shard.iter_torch_batches(
            batch_size=self.batch_size,
            prefetch_batches=PREFETCH_BATCHES,
            device=self.device,
            **shuffle,
        ):
            if recorded is not None:
                size += sum(t.numel() * t.element_size() for t in batch.values())
                if size <= SHARD_CACHE_MAX_BYTES:
                    recorded.append(batch)
                else:
                    recorded = None  # too big to keep: stream every epoch
            yield batch
        if recorded:
            self.cached = {key: torch.cat([b[key] for b in recorded]) for key in recorded[0]}

    def _from_cache(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        assert self.cached is not None
        rows = len(self.cached[LABEL_KEY])
        if not self.shuffle:
            for start in range(0, rows, self.batch_size):
                yield {k: v[start : start + self.batch_size] for k, v in self.cached.items()}
            return
        generator = torch.Generator().manual_seed(self.cfg.train.seed + epoch)
        order = torch.randperm(rows, generator=generator).to(self.device)
        for start in range(0, rows, self.batch_size):
            index = order[start : start + self.batch_size]
            yield {k: v[index] for k, v in self.cached.items()}


def make_optimizer(params: Any, cfg: LoopConfig) -> torch.optim.Optimizer:
    train = cfg.train
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train.lr, momentum=0.9, weight_decay=train.weight_decay)
    kind = torch.optim.AdamW if train.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=train.lr, weight_decay=train.weight_decay)


def loss_fn(task: str) -> nn.Module:
    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


def _targets(y: torch.Tensor, task: str) -> torch.Tensor:
    return y.long() if task == "classification" else y.float().reshape(len(y), -1)


def model_inputs(batch: dict[str, torch.Tensor], count: int) -> list[torch.Tensor]:
    """The batch's input tensors in ``forward`` order."""
    return [batch[input_key(i)] for i in range(count)]


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    shard: ShardBatches,
    cfg: LoopConfig,
    device: torch.device,
    epoch: int,
) -> dict[str, float]:
    model.train()
    criterion = loss_fn(cfg.task)
    batches = shard.epoch(epoch)
    samples, loss_sum, waited = 0, 0.0, 0.0
    started = time.perf_counter()
    iterator = iter(batches)
    while True:
        before = time.perf_counter()
        batch = next(iterator, None)
        waited += time.perf_counter() - before
        if batch is None:
            break
        y = _targets(batch[LABEL_KEY], cfg.task)
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(*model_inputs(batch, len(cfg.inputs))), y)
        loss.backward()
        optimizer.step()
        samples += len(y)
        loss_sum += loss.item() * len(y)
    elapsed = time.perf_counter() - started
    return {"samples": samples, "loss_sum": loss_sum, "wait_s": waited, "elapsed_s": elapsed}


@torch.inference_mode()
def evaluate(
    model: nn.Module, shard: ShardBatches, cfg: LoopConfig, device: torch.device, epoch: int
) -> torch.Tensor:
    """This worker's ``[count, loss_sum, correct, squared_error]`` on its validation shard."""
    model.eval()
    criterion = loss_fn(cfg.task)
    totals = torch.zeros(4, dtype=torch.float64, device=device)
    for batch in shard.epoch(epoch):
        y = _targets(batch[LABEL_KEY], cfg.task)
        out = model(*model_inputs(batch, len(cfg.inputs)))
        totals[0] += len(y)
        totals[1] += criterion(out, y).item() * len(y)
        if cfg.task == "classification":
            totals[2] += (out.argmax(dim=1) == y).sum()
        else:
            totals[3] += ((out - y) ** 2).mean(dim=1).sum()  # per row: mean over K values
    return totals


def _all_reduce(
    values: torch.Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM
) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values, op=op)
    return values


def epoch_metrics(
    epoch: int, train: dict[str, float], val: torch.Tensor, task: str, device: torch.device
) -> dict[str, float]:
    sums = _all_reduce(
        torch.tensor([train["samples"], train["loss_sum"]], dtype=torch.float64, device=device)
    )
    slowest = _all_reduce(
        torch.tensor([train["elapsed_s"]], dtype=torch.float64, device=device), dist.ReduceOp.MAX
    )
    val = _all_reduce(val)
    count = max(float(val[0]), 1.0)
    metrics = {
        "epoch": float(epoch),
        "train_loss": float(sums[1]) / max(float(sums[0]), 1.0),
        "val_loss": float(val[1]) / count,
        "samples_per_s": float(sums[0]) / max(float(slowest[0]), 1e-9),
        "data_wait_fraction": train["wait_s"] / max(train["elapsed_s"], 1e-9),
    }
    if task == "classification":
        metrics["val_accuracy"] = float(val[2]) / count
    else:
        metrics["val_rmse"] = (float(val[3]) / count) ** 0.5
    return metrics


def train_loop_per_worker(config: dict[str, Any]) -> None:
    cfg = LoopConfig.model_validate(config)
    torch.manual_seed(cfg.train.seed)
    torch.set_num_threads(max(1, min(cfg.threads, len(os.sched_getaffinity(0)))))
    context = ray.train.get_context()
    rank = context.get_world_rank()
    device = ray.train.torch.get_device()

    model = build_model(cfg.model.factory, cfg.model.kwargs, cfg.inputs, cfg.out_features)
    optimizer = make_optimizer(model.parameters(), cfg)
    start_epoch = 0
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            state = checkpoint.load(Path(folder))
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        start_epoch = state.epoch + 1
        if rank == 0:
            print(f"resumed from the checkpoint of epoch {state.epoch + 1}", flush=True)
    model = ray.train.torch.prepare_model(model)
    _move_optimizer_state(optimizer, device)

    train_shard = ShardBatches(
        ray.train.get_dataset_shard("train"), cfg, device, cfg.train.batch_size, shuffle=True
    )
    val_shard = ShardBatches(
        ray.train.get_dataset_shard("validation"), cfg, device, batch_size=1024, shuffle=False
    )
    progress = EpochProgress(cfg) if rank == 0 else None
    for epoch in range(start_epoch, cfg.train.epochs):
        train_stats = train_epoch(model, optimizer, train_shard, cfg, device, epoch)
        metrics = epoch_metrics(
            epoch, train_stats, evaluate(model, val_shard, cfg, device, epoch), cfg.task, device
        )
        if progress is not None:
            progress.publish(epoch, metrics)
        last = epoch == cfg.train.epochs - 1
        if (epoch + 1) % cfg.checkpoint.every_epochs == 0 or last:
            with tempfile.TemporaryDirectory() as folder:
                saved = None
                if rank == 0:
                    state = checkpoint.TrainState(
                        epoch=epoch,
                        model=_unwrap(model).state_dict(),
                        optimizer=optimizer.state_dict(),
                        metrics=metrics,
                    )
                    checkpoint.save(Path(folder), state)
                    saved = ray.train.Checkpoint.from_directory(folder)
                ray.train.report(metrics, checkpoint=saved)
        else:
            ray.train.report(metrics)


class EpochProgress:
    """What rank 0 publishes after each epoch: the log line, the Prometheus gauges and the
    run's per-epoch metrics file."""

    def __init__(self, cfg: LoopConfig) -> None:
        self.cfg = cfg
        self.gauges = TrainGauges(cfg.name, cfg.run_id or "")
        self.runs = RunStore.at(cfg.runs_uri) if cfg.runs_uri and cfg.run_id else None

    def publish(self, epoch: int, metrics: dict[str, float]) -> None:
        print(progress_line(epoch, self.cfg.train.epochs, metrics), flush=True)
        self.gauges.set(metrics)
        if self.runs is None or self.cfg.run_id is None:
            return
        try:
            self.runs.record_epoch(self.cfg.run_id, {**metrics, "time": time.time()})
        except OSError as error:
            # The metrics file is for people looking at the run; a storage hiccup writing
            # it must not cost the training (checkpoints, in the same storage, fail loudly).
            print(f"warning: epoch {epoch + 1} metrics not recorded: {error}", file=sys.stderr)


def progress_line(epoch: int, epochs: int, metrics: dict[str, float]) -> str:
    score = (
        f"val_accuracy={metrics['val_accuracy']:.4f}"
        if "val_accuracy" in metrics
        else f"val_rmse={metrics['val_rmse']:.4f}"
    )
    return (
        f"epoch {epoch + 1}/{epochs} train_loss={metrics['train_loss']:.4f} {score} "
        f"samples/s={metrics['samples_per_s']:.0f} "
        f"data_wait={100 * metrics['data_wait_fraction']:.1f}%"
    )


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for values in optimizer.state.values():
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and name != "step":
                values[name] = value.to(device)
