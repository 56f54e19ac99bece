"""Run bookkeeping in storage: which runs of a job exist, how they went, epoch by epoch.

``<storage>/runs/<job name>/`` holds, per run::

    <run id>/                 Ray Train's run folder (checkpoints)
    <run id>.status.json      running / finished / failed, times, version, metrics, error
    <run id>.spec.json        the resolved TrainJobSpec the run trained from
    <run id>.metrics.jsonl    one JSON object per finished epoch (rank 0 writes it)

``--resume`` finds the last unfinished run from the status files; ``tandem.train.history``
reads all of them back for ``tandem runs``. Every file is small and written whole in one
call (never appended to), which object stores support as well as local disks.
"""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import fsspec
import pyarrow.fs as pafs
from fsspec import AbstractFileSystem

from tandem.errors import NotFoundError

RunStatus = Literal["running", "finished", "failed"]
STATUS_SUFFIX = ".status.json"
SPEC_SUFFIX = ".spec.json"
METRICS_SUFFIX = ".metrics.jsonl"
MAX_ERROR_CHARS = 2000


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunStore:
    """Where one job's runs live."""

    fs: AbstractFileSystem
    root: str
    """Folder of this job's runs (no scheme)."""
    uri: str

    @classmethod
    def open(cls, storage: str, job_name: str) -> RunStore:
        store = cls.at(f"{storage.rstrip('/')}/runs/{job_name}")
        store.fs.makedirs(store.root, exist_ok=True)
        return store

    @classmethod
    def at(cls, uri: str) -> RunStore:
        """The job's run folder ``uri`` (``RunStore.uri``), without creating it."""
        fs, root = fsspec.core.url_to_fs(uri)
        return cls(fs, root.rstrip("/"), uri)

    @property
    def arrow_fs(self) -> pafs.FileSystem | None:
        """What Ray Train writes checkpoints through (``None``: its own local default)."""
        if type(self.fs).__name__ == "LocalFileSystem":
            return None
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def _path(self, run_id: str, suffix: str) -> str:
        return f"{self.root}/{run_id}{suffix}"

    def _write(self, run_id: str, suffix: str, text: str) -> None:
        self.fs.pipe_file(self._path(run_id, suffix), text.encode())

    def _read(self, run_id: str, suffix: str) -> str | None:
        try:
            return bytes(self.fs.cat_file(self._path(run_id, suffix))).decode()
        except FileNotFoundError:
            return None

    # --- status ---------------------------------------------------------------

    def set_status(self, run_id: str, status: RunStatus, **details: object) -> None:
        """Write the run's status; fields not given keep their previous values."""
        previous = self._read(run_id, STATUS_SUFFIX)
        body = {
            **(json.loads(previous) if previous else {}),
            **details,
            "run_id": run_id,
            "status": status,
            "updated": time.time(),
        }
        self._write(run_id, STATUS_SUFFIX, json.dumps(body))

    def status(self, run_id: str) -> dict[str, Any]:
        text = self._read(run_id, STATUS_SUFFIX)
        if text is None:
            raise NotFoundError(f"run {run_id!r} has no status file under {self.uri}")
        return dict(json.loads(text))

    def started(self, run_id: str, model: str, submission_id: str | None) -> None:
        """Mark the run running. A resumed run keeps its first ``started_at``; this attempt's
        start is ``attempt_started_at``."""
        previous = self._read(run_id, STATUS_SUFFIX)
        first = json.loads(previous).get("started_at") if previous else None
        now = utc_now()
        self.set_status(
            run_id,
            "running",
            model=model,
            submission_id=submission_id,
            started_at=first or now,
            attempt_started_at=now,
            finished_at=None,
            error=None,
        )

    def ended(
        self,
        run_id: str,
        status: Literal["finished", "failed"],
        *,
        version: int | None = None,
        metrics: dict[str, float] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Mark the run finished (with the registered ``version`` and its ``metrics``) or
        failed (with ``error``). ``duration_s`` sums the time of every attempt."""
        body = self.status(run_id)
        now = datetime.now(UTC)
        attempt = body.get("attempt_started_at") or body.get("started_at")
        spent = (now - datetime.fromisoformat(attempt)).total_seconds() if attempt else 0.0
        details: dict[str, object] = {
            "finished_at": now.isoformat(timespec="seconds"),
            "duration_s": round(float(body.get("duration_s") or 0.0) + spent, 3),
        }
        if version is not None:
            details["version"] = version
        if metrics is not None:
            details["metrics"] = metrics
        if error is not None:
            details["error"] = (f"{type(error).__name__}: {error}")[:MAX_ERROR_CHARS]
        self.set_status(run_id, status, **details)

    def run_ids(self) -> list[str]:
        names = [posixpath.basename(p) for p in self.fs.ls(self.root, detail=False)]
        return sorted(n.removesuffix(STATUS_SUFFIX) for n in names if n.endswith(STATUS_SUFFIX))

    def new_run_id(self, job_name: str) -> str:
        return f"{job_name}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}"

    def last_unfinished(self, job_name: str) -> str:
        for run_id in reversed(self.run_ids()):
            if self.status(run_id)["status"] != "finished":
                return run_id
        raise NotFoundError(
            f"no unfinished run of {job_name!r} under {self.uri}; run without --resume to "
            "start a new one"
        )

    # --- spec and per-epoch metrics -------------------------------------------

    def write_spec(self, run_id: str, spec: dict[str, Any]) -> None:
        """Keep the resolved spec the run trains from (``TrainJobSpec`` as JSON)."""
        self._write(run_id, SPEC_SUFFIX, json.dumps(spec, indent=2))

    def spec(self, run_id: str) -> dict[str, Any] | None:
        """The run's spec; ``None`` for runs from before specs were kept."""
        text = self._read(run_id, SPEC_SUFFIX)
        return None if text is None else dict(json.loads(text))

    def record_epoch(self, run_id: str, row: dict[str, float]) -> None:
        """Add one epoch's metrics (``row["epoch"]``: 0-based, as in checkpoints). A resumed
        run redoes the epochs after its checkpoint, so their old rows are replaced."""
        epoch = int(row["epoch"])
        rows = [r for r in self.epochs(run_id) if int(r["epoch"]) < epoch]
        rows.append({**row, "epoch": epoch})
        self._write(run_id, METRICS_SUFFIX, "".join(json.dumps(r) + "\n" for r in rows))

    def epochs(self, run_id: str) -> list[dict[str, float]]:
        """The run's per-epoch metrics, oldest first (empty before its first epoch)."""
        text = self._read(run_id, METRICS_SUFFIX)
        return [json.loads(line) for line in (text or "").splitlines() if line.strip()]
