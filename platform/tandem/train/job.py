"""A training job from spec to registry version: check, ingest, fit, register.

Everything that can be checked without workers (spec, URIs, Parquet schema,
label type, factory import) is checked before any worker starts.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import ray
import torch

import tandem
from tandem.cluster import session
from tandem.cluster.status import require_pool_gpus
from tandem.data import ingest
from tandem.data.ingest import CheckedData, PreparedData
from tandem.models import pack, resolve_factory, user_package
from tandem.registry import CodeRef, Lineage, Manifest, Registry, WeightsRef
from tandem.settings import Settings
from tandem.specs.train import TrainJobSpec
from tandem.train.runs import RunStore
from tandem.train.trainer import FitResult, fit


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    manifest: Manifest
    """The registered version's manifest."""


def with_resolved_paths(spec: TrainJobSpec, settings: Settings) -> TrainJobSpec:
    """The spec with relative dataset paths made absolute under the Tandem home."""
    dataset = spec.dataset.model_copy(
        update={
            "train": settings.resolve_uri(spec.dataset.train),
            "validation": spec.dataset.validation and settings.resolve_uri(spec.dataset.validation),
        }
    )
    return spec.model_copy(update={"dataset": dataset})


def preflight(spec: TrainJobSpec) -> CheckedData:
    """Every check that needs no cluster; raises ``SpecError`` naming the field.

    ``spec`` must already have resolved paths (``with_resolved_paths``).
    """
    checked = ingest.check(spec.dataset, spec.task)
    resolve_factory(spec.model.factory)
    return checked


def storage_uri(spec: TrainJobSpec, settings: Settings) -> str:
    return settings.resolve_uri(spec.storage) if spec.storage else settings.storage_uri


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
    session.connect(settings)
    if spec.scaling.use_gpu and settings.embedded:
        require_pool_gpus("train", spec.scaling.num_workers, "scaling.num_workers")
    print(f"run {run_id}: {spec.scaling.num_workers} workers, storage {runs.uri}", flush=True)
    runs.set_status(run_id, "running", submission_id=submission_id)
    try:
        data = ingest.prepare(spec.dataset, spec.task, checked, spec.train.seed)
        result = fit(spec, data, runs, run_id)
        manifest = build_manifest(
            spec, data, result, run_id, submission_id, package[0] if package else None
        )
        manifest = Registry(storage).register(manifest, result.best.model, code=code)
    except BaseException:
        runs.set_status(run_id, "failed", submission_id=submission_id)
        raise
    runs.set_status(run_id, "finished", submission_id=submission_id, version=manifest.version)
    return TrainResult(run_id=run_id, manifest=manifest)


def build_manifest(
    spec: TrainJobSpec,
    data: PreparedData,
    result: FitResult,
    run_id: str,
    submission_id: str | None,
    package: str | None = None,
) -> Manifest:
    """The version's manifest; ``package`` names the user package shipped with it."""
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
            spec_sha256=hashlib.sha256(
                json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()
            ).hexdigest(),
            datasets=data.refs,
            code_version=code_version(),
            ray_version=ray.__version__,
            torch_version=torch.__version__,
            python_version=platform.python_version(),
            checkpoint=result.best_uri,
        ),
    )


def code_version() -> str:
    """Tandem's version plus the git commit of its source tree when there is one."""
    source = Path(tandem.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return tandem.__version__
    return f"{tandem.__version__}+g{commit}"
