"""Offline scoring of Parquet with a registered model version, in the batch pool.

The spec and result types stay light; ``preflight`` and ``input_columns`` load Ray or
torch, so they are imported on first use (a module ``__getattr__``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tandem.batch.config import BatchPredictSpec, parse_model_ref
from tandem.batch.output import BatchResult, read_summary

if TYPE_CHECKING:
    from tandem.batch.pipeline import preflight
    from tandem.batch.transform import input_columns

_LAZY = {"preflight": "tandem.batch.pipeline", "input_columns": "tandem.batch.transform"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tandem.batch' has no attribute {name!r}")


__all__ = [
    "BatchPredictSpec",
    "BatchResult",
    "input_columns",
    "parse_model_ref",
    "preflight",
    "read_summary",
]
