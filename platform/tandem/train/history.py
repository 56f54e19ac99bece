"""Training runs read back from run storage: what ``tandem runs`` shows. No Ray here.

Everything comes from the files ``RunStore`` writes (status, spec, per-epoch metrics), so
runs can be looked at without a cluster, during training and long after.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field

from tandem.errors import NotFoundError
from tandem.train.runs import STATUS_SUFFIX, RunStatus, RunStore

SHOWN_IN_ERRORS = 10
"""Newest runs an unknown run id's error names."""


class RunSummary(BaseModel):
    """One training run as ``tandem runs`` lists it."""

    # Status files come from older and newer Tandems alike: unknown keys are ignored.
    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: str
    model: str
    """The job's name, which is also the registry model it registers."""
    status: RunStatus
    epochs: int = 0
    """Epochs with metrics so far."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """The registered checkpoint's metrics once finished; before that (or after a failure)
    the last epoch's."""
    started_at: str | None = None
    """UTC ISO time the run first started (``None`` for runs from before it was kept)."""
    finished_at: str | None = None
    duration_s: float | None = None
    """Seconds spent running, summed over resumed attempts; ``None`` while running."""
    version: int | None = None
    """The registry version it registered."""
    submission_id: str | None = None
    error: str | None = None
    """Why it failed."""
    updated: float = 0.0
    """Unix time of the last status change."""

    @property
    def sort_key(self) -> float:
        """When the run started (its last status change for runs without ``started_at``)."""
        if self.started_at is None:
            return self.updated
        return datetime.fromisoformat(self.started_at).timestamp()


class RunRecord(BaseModel):
    """One run in full: its status, the spec it trained from and its per-epoch metrics."""

    model_config = ConfigDict(frozen=True)

    summary: RunSummary
    spec: dict[str, Any] | None
    """The resolved ``TrainJobSpec`` as JSON (``None`` for runs from before it was kept)."""
    epochs: list[dict[str, float]]
    """One row per epoch, oldest first: ``epoch`` (0-based), ``train_loss``, ``val_loss``,
    ``val_accuracy`` or ``val_rmse``, ``samples_per_s``, ``data_wait_fraction`` and
    ``time`` (Unix seconds when rank 0 recorded it)."""

    @property
    def run_id(self) -> str:
        return self.summary.run_id


def list_runs(storage_uri: str, name: str | None = None) -> list[RunSummary]:
    """Every run under ``<storage_uri>/runs`` (of job ``name`` only, when given), newest last."""
    summaries = [_summary(store, run_id) for store, run_id in _status_files(storage_uri, name)]
    return sorted(summaries, key=lambda s: (s.sort_key, s.run_id))


def load_run(storage_uri: str, run_id: str) -> RunRecord:
    """One run's status, spec and per-epoch metrics; ``NotFoundError`` names known runs."""
    for store, found in _status_files(storage_uri, None):
        if found == run_id:
            return RunRecord(
                summary=_summary(store, run_id),
                spec=store.spec(run_id),
                epochs=store.epochs(run_id),
            )
    known = [s.run_id for s in list_runs(storage_uri)][-SHOWN_IN_ERRORS:]
    listed = ", ".join(known) if known else "none yet"
    raise NotFoundError(
        f"no run {run_id!r} under {storage_uri.rstrip('/')}/runs (newest runs: {listed}); "
        "`tandem runs` lists them all"
    )


def _status_files(storage_uri: str, name: str | None) -> list[tuple[RunStore, str]]:
    """(the job's store, run id) of each status file under the storage's ``runs`` folder."""
    fs, base = fsspec.core.url_to_fs(storage_uri)
    runs = f"{base.rstrip('/')}/runs"
    found = fs.glob(f"{runs}/{name or '*'}/*{STATUS_SUFFIX}")
    stores: dict[str, RunStore] = {}
    pairs = []
    for path in sorted(found):
        job = posixpath.basename(posixpath.dirname(path))
        if job not in stores:
            stores[job] = RunStore(fs, f"{runs}/{job}", f"{storage_uri.rstrip('/')}/runs/{job}")
        pairs.append((stores[job], posixpath.basename(path).removesuffix(STATUS_SUFFIX)))
    return pairs


def _summary(store: RunStore, run_id: str) -> RunSummary:
    status = store.status(run_id)
    rows = store.epochs(run_id)
    metrics = status.get("metrics") or (rows[-1] if rows else {})
    return RunSummary.model_validate(
        {
            **status,
            "model": status.get("model") or posixpath.basename(store.root),
            "epochs": len(rows),
            "metrics": {k: v for k, v in metrics.items() if k != "time"},
        }
    )
