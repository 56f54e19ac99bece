"""Run bookkeeping in storage: which runs of a job exist and whether they finished.

``<storage>/runs/<job name>/<run id>/`` is Ray Train's run folder (checkpoints);
``<run id>.status.json`` beside it says running / finished / failed, so
``--resume`` can find the last unfinished run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal

import fsspec
import pyarrow.fs as pafs
from fsspec import AbstractFileSystem

from tandem.errors import NotFoundError

RunStatus = Literal["running", "finished", "failed"]


@dataclass(frozen=True)
class RunStore:
    """Where one job's runs live."""

    fs: AbstractFileSystem
    root: str
    """Folder of this job's runs (no scheme)."""
    uri: str

    @classmethod
    def open(cls, storage: str, job_name: str) -> RunStore:
        fs, path = fsspec.core.url_to_fs(storage)
        root = f"{path.rstrip('/')}/runs/{job_name}"
        fs.makedirs(root, exist_ok=True)
        return cls(fs, root, f"{storage.rstrip('/')}/runs/{job_name}")

    @property
    def arrow_fs(self) -> pafs.FileSystem | None:
        """What Ray Train writes checkpoints through (``None``: its own local default)."""
        if type(self.fs).__name__ == "LocalFileSystem":
            return None
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def _status_path(self, run_id: str) -> str:
        return f"{self.root}/{run_id}.status.json"

    def set_status(self, run_id: str, status: RunStatus, **details: object) -> None:
        body = {"run_id": run_id, "status": status, "updated": time.time(), **details}
        with self.fs.open(self._status_path(run_id), "w") as handle:
            handle.write(json.dumps(body))

    def status(self, run_id: str) -> dict[str, object]:
        with self.fs.open(self._status_path(run_id), "r") as handle:
            return dict(json.loads(handle.read()))

    def run_ids(self) -> list[str]:
        names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]
        return sorted(n.removesuffix(".status.json") for n in names if n.endswith(".status.json"))

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
