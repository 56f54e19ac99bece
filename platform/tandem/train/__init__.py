"""Training: a spec becomes DDP workers in the train pool, checkpoints, a registry version.

Every name is bound on first use: a train worker imports ``tandem.train.loop`` (and so
this package) when it unpickles its loop, and must not pay for the driver's modules
(the job, the registry, Ray Data's planning) on the way.
"""

from typing import TYPE_CHECKING

from tandem._lazy import lazy_exports

if TYPE_CHECKING:
    from tandem.train.curves import write_curves
    from tandem.train.history import RunRecord, RunSummary, list_runs, load_run
    from tandem.train.job import TrainResult, preflight, run, storage_uri, with_resolved_paths
    from tandem.train.reproduce import Reproduction, compare_versions, reproduction_spec
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "tandem.train.curves": ("write_curves",),
            "tandem.train.history": ("RunRecord", "RunSummary", "list_runs", "load_run"),
            "tandem.train.job": (
                "TrainResult",
                "preflight",
                "run",
                "storage_uri",
                "with_resolved_paths",
            ),
            "tandem.train.reproduce": ("Reproduction", "compare_versions", "reproduction_spec"),
        },
    )

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
