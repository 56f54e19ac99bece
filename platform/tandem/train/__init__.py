"""Training: a spec becomes DDP workers in the train pool, checkpoints, a registry version."""

from tandem.train.curves import write_curves
from tandem.train.history import RunRecord, RunSummary, list_runs, load_run
from tandem.train.job import TrainResult, preflight, run, storage_uri, with_resolved_paths
from tandem.train.reproduce import Reproduction, compare_versions, reproduction_spec

__all__ = [
    "Reproduction",
    "RunRecord",
    "RunSummary",
    "TrainResult",
    "compare_versions",
    "list_runs",
    "load_run",
    "preflight",
    "reproduction_spec",
    "run",
    "storage_uri",
    "with_resolved_paths",
    "write_curves",
]
