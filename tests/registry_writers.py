"""What each process of ``test_registry_concurrency`` runs, in a module of its own: each
writer process imports only this and ``tandem.registry`` (not ``factories``, which loads
Ray, sklearn and the trainer: seconds of CPU per process on a two-core machine)."""

from __future__ import annotations

from multiprocessing.synchronize import Barrier

import torch

from tandem.registry import Manifest, Registry


def register_one(
    root: str, manifest: Manifest, weights: dict[str, torch.Tensor], start: Barrier
) -> None:
    registry = Registry(root)
    start.wait()
    registry.register(manifest, weights)


def move_alias(root: str, versions: list[int], start: Barrier) -> None:
    registry = Registry(root)
    start.wait()
    for version in versions:
        registry.set_alias("iris-mlp", "production", version)
