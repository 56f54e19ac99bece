"""A training job from spec to registry version: check, ingest, fit, register.

Everything that can be checked without workers (spec, URIs, Parquet schema,
label type, factory import) is checked before any worker starts.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime

import ray
import ray.data
import torch

from tandem.cluster import connect, require_pool_gpus
from tandem.data import CheckedData, PreparedData
from tandem.data import check as check_data
from tandem.data import prepare as prepare_data
from tandem.models import pack, resolve_factory, user_package
from tandem.registry import CodeRef, Lineage, Manifest, Registry, WeightsRef
from tandem.settings import Settings
from tandem.specs import Pool, TrainJobSpec
from tandem.train.provenance import package_versions, source_tree
from tandem.train.runs import RunStore
from tandem.train.trainer import FitResult, fit


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    manifest: Manifest
    """The registered version's manifest."""


def with_resolved_paths(spec: TrainJobSpec, settings: Settings) -> TrainJobSpec:
    """The spec with relative dataset paths made absolute under the Tandem home, and its
    storage filled in from the settings, so the job (wherever it runs) writes where this
    process reads."""
    dataset = spec.dataset.model_copy(
        update={
            "train": settings.resolve_uri(spec.dataset.train),
            "validation": spec.dataset.validation and settings.resolve_uri(spec.dataset.validation),
        }
    )
    return spec.model_copy(update={"dataset": dataset, "storage": storage_uri(spec, settings)})


def preflight(spec: TrainJobSpec) -> CheckedData:
    """Every check that needs no cluster; raises ``SpecError`` naming the field.

    ``spec`` must already have resolved paths (``with_resolved_paths``).
    """
    checked = check_data(spec.dataset, spec.task)
    resolve_factory(spec.model.factory)
    return checked


def storage_uri(spec: TrainJobSpec, settings: Settings) -> str:
    return settings.storage_for(spec.storage)


def run(
    spec: TrainJobSpec,
    resume: bool = False,
    submission_id: str | None = None,
    settings: Settings | None = None,
) -> TrainResult:
    settings = settings or Settings.from_env()
    spec = with_resolved_paths(spec, settings)
    checked = preflight(spec)
    storage = storage_uri(spec, settings)
    runs = RunStore.open(storage, spec.name)
    run_id = runs.last_unfinished(spec.name) if resume else runs.new_run_id(spec.name)
    # Packed before training, so the version stores the code it was trained with.
    package = user_package(spec.model.factory)
    code = pack(package[1]) if package is not None else None
    connect(settings)
    if spec.scaling.use_gpu and settings.embedded:
        require_pool_gpus(Pool.TRAIN, spec.scaling.num_workers, "scaling.num_workers")
    print(f"run {run_id}: {spec.scaling.num_workers} workers, storage {runs.uri}", flush=True)
    runs.write_spec(run_id, spec.model_dump(mode="json"))
    runs.started(run_id, spec.name, submission_id)
    try:
        deterministic_data()
        data = prepare_data(spec.dataset, spec.task, checked, spec.train.seed)
        result = fit(spec, data, runs, run_id)
        manifest = build_manifest(
            spec, data, result, run_id, submission_id, package[0] if package else None
        )
        manifest = Registry(storage).register(manifest, result.best.model, code=code)
    except BaseException as error:
        runs.ended(run_id, "failed", error=error)
        raise
    runs.ended(run_id, "finished", version=manifest.version, metrics=manifest.metrics)
    return TrainResult(run_id=run_id, manifest=manifest)


def deterministic_data() -> None:
    """Make this driver's Ray Data pipelines (read, split, fit, materialise) yield blocks
    in the same order every time, so a seed gives the same statistics and shards; the
    trainer does the same for the workers' shards (``trainer.fit``)."""
    ray.data.DataContext.get_current().execution_options.preserve_order = True


def build_manifest(
    spec: TrainJobSpec,
    data: PreparedData,
    result: FitResult,
    run_id: str,
    submission_id: str | None,
    package: str | None = None,
) -> Manifest:
    """The version's manifest; ``package`` names the user package shipped with it.

    ``spec`` must have resolved paths (``with_resolved_paths``): the lineage keeps it as
    it is, so training from it again (``tandem reproduce``) reads the same data."""
    recorded = spec.model_dump(mode="json")
    tree = source_tree()
    metrics = {k: float(v) for k, v in result.best.metrics.items()}
    return Manifest(
        name=spec.name,
        version=0,
        created_at=datetime.now(UTC).isoformat(),
        task=spec.task,
        factory=spec.model.factory,
        kwargs=spec.model.kwargs,
        out_features=data.out_features,
        inputs=data.inputs,
        target=data.target,
        metrics=metrics,
        weights=WeightsRef(sha256="", bytes=0),
        code=None if package is None else CodeRef(package=package, sha256="", bytes=0),
        lineage=Lineage(
            run_name=spec.name,
            run_id=run_id,
            submission_id=submission_id,
            spec_sha256=hashlib.sha256(json.dumps(recorded, sort_keys=True).encode()).hexdigest(),
            datasets=data.refs,
            code_version=tree.code_version,
            ray_version=ray.__version__,
            torch_version=torch.__version__,
            python_version=platform.python_version(),
            checkpoint=result.best_uri,
            spec=recorded,
            seed=spec.train.seed,
            git_commit=tree.commit,
            git_dirty=tree.dirty,
            packages=package_versions(),
        ),
    )
