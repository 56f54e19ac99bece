"""Separate processes writing one local registry at once: no shared or lost updates."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import torch

from factories import make_manifest, make_weights
from registry_writers import move_alias, register_one
from tandem.registry import Registry

# forkserver: each writer is forked from a fresh interpreter that has imported the registry
# once (and run no torch op), not from this torch process; forks have their own registry,
# files and locks, like independent jobs, and start in milliseconds rather than seconds.
WRITERS = multiprocessing.get_context("forkserver")
WRITERS.set_forkserver_preload(["registry_writers"])


def run_all(target: Callable[..., None], args: list[tuple[object, ...]]) -> None:
    processes = [WRITERS.Process(target=target, args=a) for a in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_processes_registering_at_once_get_distinct_readable_versions(tmp_path: Path) -> None:
    root = str(tmp_path)
    start = WRITERS.Barrier(8)

    # Built here: the writers get them pickled and import no more than the registry.
    writes = [(make_manifest(run_id=str(seed)), make_weights(seed)) for seed in range(8)]

    run_all(register_one, [(root, *write, start) for write in writes])

    registry = Registry(root)
    assert registry.versions("iris-mlp") == list(range(1, 9))
    seeds = set()
    for version in range(1, 9):
        manifest, weights = registry.load_weights("iris-mlp", version)
        seed = int(manifest.lineage.run_id)
        seeds.add(seed)
        expected = make_weights(seed)
        assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert seeds == set(range(8))


def test_concurrent_alias_moves_lose_no_update(tmp_path: Path) -> None:
    root = str(tmp_path)
    registry = Registry(root)
    for seed in range(12):
        registry.register(make_manifest(), make_weights(seed))
    start = WRITERS.Barrier(4)
    # Every move names a different version, so each one must show in the history.
    plans = [[1 + worker + 4 * i for i in range(3)] for worker in range(4)]

    run_all(move_alias, [(root, plan, start) for plan in plans])

    history = registry.alias_history("iris-mlp", "production")
    assert sorted(history) == list(range(1, 13))
    for plan in plans:  # each process's own moves keep their order
        assert [v for v in history if v in plan] == plan
    assert registry.aliases("iris-mlp") == {"production": history[-1]}
