"""Checkpoint files: weights and optimizer state as safetensors, the rest as JSON.

Nothing here pickles: a checkpoint can be read back without trusting its bytes
beyond tensors and JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
META_FILE = "meta.json"


@dataclass
class TrainState:
    epoch: int
    """Last finished epoch (0-based)."""
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    metrics: dict[str, float]


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            key = f"{index}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(directory: Path, state: TrainState) -> None:
    model = {k: v.detach().cpu().contiguous() for k, v in state.model.items()}
    save_file(model, str(directory / MODEL_FILE))
    tensors, optimizer_meta = _split_optimizer(state.optimizer)
    save_file(tensors, str(directory / OPTIMIZER_FILE))
    meta = {"epoch": state.epoch, "metrics": state.metrics, "optimizer": optimizer_meta}
    (directory / META_FILE).write_text(json.dumps(meta))


def load(directory: Path) -> TrainState:
    meta = json.loads((directory / META_FILE).read_text())
    optimizer = _join_optimizer(load_file(str(directory / OPTIMIZER_FILE)), meta["optimizer"])
    return TrainState(
        epoch=int(meta["epoch"]),
        model=load_file(str(directory / MODEL_FILE)),
        optimizer=optimizer,
        metrics=meta["metrics"],
    )
