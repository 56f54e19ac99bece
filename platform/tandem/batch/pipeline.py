"""Batch inference on Ray Data: read Parquet, score in an actor pool in the batch pool, write.

All of ``tandem.batch``'s Ray calls live here. Every read task and scoring actor
asks for the ``batch`` pool, so offline scoring never lands on serve cores.
Scored batches stream back to this driver in input order, which numbers the
rows and writes one Parquet file; the output (ids and a few outputs per row) is
far smaller than the input, so the single writer is not the bottleneck.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from ray.data import ActorPoolStrategy, DataContext

from tandem.batch.config import ROW_INDEX_COLUMN, BatchPredictSpec
from tandem.batch.output import BatchResult, ScoredParquet
from tandem.batch.transform import RowIndex, Scorer, input_columns
from tandem.cluster import connect, pool_resources, require_pool_gpus, usable_cores
from tandem.data import ParquetSource, open_source, read_parquet
from tandem.errors import SpecError
from tandem.models import device_here, load_runner, output_names
from tandem.registry import Manifest, Registry
from tandem.settings import Settings
from tandem.specs import Pool, Precision

POOL = Pool.BATCH
PROGRESS_EVERY_S = 5.0

Progress = Callable[[int, float], None]
"""Called with (rows scored so far, seconds since scoring started)."""


class ScoringActor:
    """One actor of the pool: loads the version once (sha256-checked) on its device (its
    GPU when it reserved one: Ray set its CUDA_VISIBLE_DEVICES), then scores batches."""

    def __init__(
        self,
        storage: str,
        model: str,
        version: int,
        id_column: str | None,
        actors: int,
        gpus: float = 0.0,
        precision: Precision = "fp32",
    ) -> None:
        # Actors of one node share its pinned cores; more threads than that only contend.
        torch.set_num_threads(max(1, usable_cores() // actors))
        device = device_here(gpus, f"a batch-scoring actor of {model} v{version}")
        runner = load_runner(Registry(storage), model, version, device, precision)
        print(f"tandem runner loaded: {runner.describe()}", flush=True)
        self.scorer = Scorer(runner, id_column)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.scorer(batch)


def check_columns(source: ParquetSource, manifest: Manifest, id_column: str | None) -> list[str]:
    """Columns to read; ``SpecError`` naming what is missing before anything starts."""
    features = input_columns(manifest)
    wanted = features + ([id_column] if id_column is not None else [])
    names = source.schema().names
    hint = {
        column: f"{manifest.name} v{manifest.version} needs its training features {features[:5]}…"
        for column in features
    } | ({id_column: "name an existing column with --id-column"} if id_column else {})
    problems = [
        f"input: column {column!r} is not in {source.uri} (columns: {names[:20]}); {hint[column]}"
        for column in wanted
        if column not in names
    ]
    if id_column in output_names(manifest):
        problems.append(
            f"id_column: {id_column!r} is also the name of an output column "
            f"{list(output_names(manifest))}; name another column"
        )
    if problems:
        raise SpecError("input", problems)
    return wanted


@dataclass(frozen=True)
class Checked:
    """A spec checked against the registry and the input's schema (no Ray needed)."""

    spec: BatchPredictSpec
    """The spec with URIs made absolute and ``storage`` filled in."""
    manifest: Manifest
    source: ParquetSource
    columns: list[str]


def preflight(spec: BatchPredictSpec, settings: Settings) -> Checked:
    """Every check that needs no cluster; raises ``SpecError`` / ``NotFoundError``."""
    resolved = spec.model_copy(
        update={
            "input": settings.resolve_uri(spec.input),
            "output": settings.resolve_uri(spec.output),
            "storage": settings.storage_for(spec.storage),
        }
    )
    assert resolved.storage is not None
    manifest = Registry(resolved.storage).manifest(spec.model, spec.version)
    source = open_source(resolved.input, "input")
    return Checked(resolved, manifest, source, check_columns(source, manifest, spec.id_column))


def run(
    spec: BatchPredictSpec, settings: Settings, progress: Progress | None = None
) -> BatchResult:
    checked = preflight(spec, settings)
    spec, manifest, source = checked.spec, checked.manifest, checked.source
    connect(settings)
    if spec.gpus_per_actor > 0 and settings.embedded:
        require_pool_gpus(POOL, spec.gpus_per_actor, "gpus_per_actor")
    context = DataContext.get_current()
    # The driver numbers rows as batches arrive, so they must arrive in input order.
    context.execution_options.preserve_order = True
    scored = read_parquet(source, checked.columns, POOL).map_batches(
        ScoringActor,
        fn_constructor_kwargs={
            "storage": spec.storage,
            "model": manifest.name,
            "version": manifest.version,
            "id_column": spec.id_column,
            "actors": spec.max_actors,
            "gpus": spec.gpus_per_actor,
            "precision": spec.precision,
        },
        batch_size=spec.batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(min_size=1, max_size=spec.max_actors),
        num_cpus=spec.cpus_per_actor,
        num_gpus=spec.gpus_per_actor,
        resources=pool_resources(POOL),
    )
    index = RowIndex(ROW_INDEX_COLUMN) if spec.id_column is None else None
    started = time.monotonic()
    reported = started
    with ScoredParquet(spec.output) as writer:
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            writer.write(index(batch) if index is not None else batch)
            now = time.monotonic()
            if progress is not None and now - reported >= PROGRESS_EVERY_S:
                progress(writer.rows, now - started)
                reported = now
        result = BatchResult(
            model=manifest.name,
            version=manifest.version,
            requested=spec.version,
            rows=writer.rows,
            seconds=time.monotonic() - started,
            output=writer.uri,
        )
        writer.write_summary(result)
    return result
