"""Score versions of a model on the same held-out Parquet, in one task in the batch pool.

``plan`` checks everything that needs no cluster (versions, data, label, columns);
``score_source`` is the scoring itself, plain pyarrow, numpy and torch; ``evaluate`` runs
it as ONE Ray task in the batch pool (this module's only Ray calls) and stores the
result. Reporting is not gating: a worse version is measured, never refused, here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from tandem.data import ParquetSource, open_source
from tandem.errors import InputError, SpecError, TandemError
from tandem.evaluation.metrics import Totals, chunk_totals
from tandem.evaluation.records import Evaluation, created_now, save
from tandem.models import ModelRunner, load_runner
from tandem.preprocess import gather
from tandem.registry import Manifest, Registry
from tandem.settings import Settings
from tandem.specs import Pool

POOL = Pool.BATCH
TASK_CPUS = 1
CHUNK_ROWS = 1024
"""Rows read and scored at a time: bounded memory for image inputs, few calls for tabular."""
HINT = "pass --data URI (Parquet holding the inputs and the label) and --label COLUMN"


@dataclass(frozen=True)
class Plan:
    """An evaluation checked against the registry and the data's schema (no Ray needed)."""

    storage: str
    candidate: Manifest
    baseline: Manifest | None
    against: str | None
    source: ParquetSource
    label: str
    columns: list[str]
    """Parquet columns to read: every scored version's inputs and the label."""

    @property
    def versions(self) -> list[int]:
        scored = {self.candidate.version}
        if self.baseline is not None:
            scored.add(self.baseline.version)
        return sorted(scored)


@dataclass(frozen=True)
class Scored:
    """What the task returns: rows read, the data's fingerprint, metrics per version."""

    rows: int
    fingerprint: str
    scores: dict[str, dict[str, float]]


def input_columns(manifest: Manifest) -> list[str]:
    return [column for schema in manifest.inputs for column in schema.columns]


def lineage_dataset(manifest: Manifest) -> Mapping[str, Any] | None:
    """The ``dataset`` section of the training spec the version's lineage records, if any."""
    # Lineage.spec (the whole TrainJobSpec as JSON) is newer than some stored manifests.
    spec = getattr(manifest.lineage, "spec", None)
    dataset = spec.get("dataset") if isinstance(spec, Mapping) else None
    return dataset if isinstance(dataset, Mapping) else None


def default_data(manifest: Manifest, data: str | None, label: str | None) -> tuple[str, str]:
    """``data`` and ``label``, each defaulting to the candidate's validation set and label
    column from its training spec; ``SpecError`` saying what to pass when there is none."""
    dataset = lineage_dataset(manifest)
    who = f"{manifest.name} v{manifest.version}"
    if data is None:
        if dataset is None:
            raise SpecError(
                "evaluate",
                [
                    f"{who} records no training spec (it was registered outside a Tandem "
                    f"training job), so there is no validation set to score on; {HINT}"
                ],
            )
        data = dataset.get("validation")
        if not isinstance(data, str):
            raise SpecError(
                "evaluate",
                [
                    f"{who} was validated on a split of its own training data "
                    f"({dataset.get('train')}), which other versions may have trained on; "
                    f"score on held-out data instead: {HINT}"
                ],
            )
    if label is None:
        label = dataset.get("label") if dataset is not None else None
        if not isinstance(label, str):
            raise SpecError(
                "evaluate", [f"{who} records no label column for {data}; pass --label COLUMN"]
            )
    return data, label


def check_comparable(candidate: Manifest, baseline: Manifest) -> None:
    """Versions scored together must answer the same question from the same columns."""
    problems = []
    if candidate.task != baseline.task:
        problems.append(
            f"task: v{candidate.version} is {candidate.task}, v{baseline.version} "
            f"is {baseline.task}"
        )
    elif candidate.task == "regression" and candidate.target.shape != baseline.target.shape:
        problems.append(
            f"target: v{candidate.version} predicts shape {candidate.target.shape}, "
            f"v{baseline.version} {baseline.target.shape}"
        )
    ours, theirs = set(input_columns(candidate)), set(input_columns(baseline))
    if ours != theirs:
        problems.append(
            f"inputs: v{candidate.version} and v{baseline.version} read different columns "
            f"(only v{candidate.version}: {sorted(ours - theirs)[:10]}; only "
            f"v{baseline.version}: {sorted(theirs - ours)[:10]})"
        )
    if problems:
        problems.append("versions can only be compared on the same task and input columns")
        raise SpecError(f"evaluate {candidate.name}", problems)


def check_held_out(uri: str, manifests: list[Manifest]) -> None:
    """Refuse data a scored version trained on (as its spec records it): that version would
    be marked on rows it learned."""
    trained = [
        f"v{m.version}"
        for m in manifests
        if (dataset := lineage_dataset(m)) is not None and dataset.get("train") == uri
    ]
    if trained:
        raise SpecError(
            "data",
            [f"data: {', '.join(trained)} trained on {uri}; score on rows no version trained on"],
        )


def check_label(schema: pa.Schema, label: str, manifest: Manifest, uri: str) -> None:
    kind = schema.field(label).type
    if manifest.task == "classification":
        if not pa.types.is_integer(kind):
            raise SpecError(
                "label", [f"label: a classifier needs integer class ids; {label!r} is {kind}"]
            )
        return
    width = int(np.prod(manifest.target.shape)) if manifest.target.shape else 1
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if pa.types.is_fixed_size_list(kind):
        value = kind.value_type
        numeric = pa.types.is_integer(value) or pa.types.is_floating(value)
        values = kind.list_size
    else:
        values = 1
    if not numeric or values != width:
        raise SpecError(
            "label",
            [
                f"label: {manifest.name} v{manifest.version} predicts {width} number(s) per row; "
                f"column {label!r} of {uri} is {kind}"
            ],
        )


def plan(
    settings: Settings,
    name: str,
    candidate: int | str,
    against: int | str | None = None,
    data: str | None = None,
    label: str | None = None,
    storage: str | None = None,
) -> Plan:
    """Every check that needs no cluster; raises ``SpecError`` / ``NotFoundError``."""
    root = settings.storage_for(storage)
    registry = Registry(root)
    first = registry.manifest(name, candidate)
    second = None
    if against is not None:
        second = registry.manifest(name, against)
        check_comparable(first, second)
    uri, column = default_data(first, data, label)
    source = open_source(settings.resolve_uri(uri), "data")
    check_held_out(source.uri, [first] if second is None else [first, second])
    inputs = input_columns(first) + input_columns(second or first)
    columns = list(dict.fromkeys([*inputs, column]))
    schema = source.schema()
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise SpecError(
            "data",
            [f"data: {source.uri} lacks columns {missing[:10]} (it has {schema.names[:20]})"],
        )
    check_label(schema, column, first, source.uri)
    return Plan(
        storage=root,
        candidate=first,
        baseline=second,
        against=None if against is None else str(against),
        source=source,
        label=column,
        columns=columns,
    )


def numpy_batch(batch: pa.RecordBatch, where: str) -> dict[str, np.ndarray]:
    """A Parquet chunk as Ray Data's numpy format would give it (what ``gather`` reads);
    ``SpecError`` for a missing value, which no version could be scored on."""
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if column.null_count:
            raise SpecError(
                "data",
                [
                    f"data: column {name!r} has {column.null_count} missing value(s) in "
                    f"{where}; drop or fill those rows"
                ],
            )
    return {
        name: column.to_numpy(zero_copy_only=False)
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
    }


def score_chunk(runner: ModelRunner, batch: dict[str, np.ndarray], label: str) -> Totals:
    """One chunk scored by one version, exactly as batch scoring computes its outputs."""
    manifest = runner.manifest
    outputs = runner.predict([gather(schema, batch) for schema in manifest.inputs])
    return chunk_totals(manifest.task, outputs, batch[label], manifest.target.classes)


def chunks(
    source: ParquetSource, columns: list[str], chunk_rows: int
) -> Iterator[tuple[str, int, dict[str, np.ndarray]]]:
    """``(file, first row in that file, numpy batch)`` for every non-empty chunk, in order."""
    for path in source.files:
        where = path if "://" not in source.uri else source.fs.unstrip_protocol(path)
        offset = 0
        with source.fs.open(path, "rb") as handle:
            for chunk in pq.ParquetFile(handle).iter_batches(
                batch_size=chunk_rows, columns=columns
            ):
                if chunk.num_rows:
                    yield where, offset, numpy_batch(chunk, where)
                offset += chunk.num_rows


def score_source(
    runners: list[ModelRunner],
    source: ParquetSource,
    columns: list[str],
    label: str,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[int, dict[str, dict[str, float]]]:
    """Rows read and each runner's metrics over all of them: every chunk is read once and
    scored by every version."""
    totals = {runner.version: Totals() for runner in runners}
    for where, offset, batch in chunks(source, columns, chunk_rows):
        for runner in runners:
            try:
                totals[runner.version] += score_chunk(runner, batch, label)
            except InputError as error:
                raise SpecError(
                    "data",
                    [f"data: v{runner.version} cannot score rows {offset}.. of {where}: {error}"],
                ) from None
    rows = next(iter(totals.values())).rows
    if rows == 0:
        raise SpecError("data", [f"data: {source.uri} holds no rows"])
    return rows, {str(version): total.metrics() for version, total in totals.items()}


def score_versions(
    storage: str, name: str, versions: list[int], uri: str, columns: list[str], label: str
) -> Scored:
    """The Ray task's body: load each version on the CPU (sha256-checked) and score it."""
    torch.set_num_threads(TASK_CPUS)  # what the task reserved in the batch pool
    registry = Registry(storage)
    runners = [load_runner(registry, name, v, device=torch.device("cpu")) for v in versions]
    source = open_source(uri, "data")
    rows, scores = score_source(runners, source, columns, label)
    return Scored(rows=rows, fingerprint=source.fingerprint().digest, scores=scores)


def evaluate(
    settings: Settings,
    name: str,
    candidate: int | str,
    against: int | str | None = None,
    data: str | None = None,
    label: str | None = None,
    storage: str | None = None,
) -> Evaluation:
    """Score ``candidate`` (and the version ``against`` names: an alias or a number) on the
    same data, in the batch pool; the stored ``Evaluation``. ``data`` and ``label`` default
    to the candidate's validation set and label column from its training spec."""
    # The one Ray seam of tandem.evaluation: importing the package (as the pure gate in
    # tandem.serve.promotion does) loads no Ray.
    import ray

    from tandem.cluster import connect, pool_resources

    planned = plan(settings, name, candidate, against, data, label, storage)
    connect(settings)
    task = ray.remote(num_cpus=TASK_CPUS, resources=pool_resources(POOL))(score_versions)
    ref = task.remote(
        planned.storage, name, planned.versions, planned.source.uri, planned.columns, planned.label
    )
    try:
        scored: Scored = ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        # Tandem's own errors say what to fix; Ray's wrapper would bury them in a traceback.
        if isinstance(error.cause, TandemError):
            raise error.cause from None
        raise
    key, created = created_now()
    evaluation = Evaluation(
        id=key,
        model=name,
        created_at=created,
        candidate=planned.candidate.version,
        baseline=None if planned.baseline is None else planned.baseline.version,
        against=planned.against,
        data=planned.source.uri,
        fingerprint=scored.fingerprint,
        label=planned.label,
        rows=scored.rows,
        scores=scored.scores,
    )
    save(Registry(planned.storage), evaluation)
    return evaluation
