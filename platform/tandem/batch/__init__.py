"""Offline scoring of Parquet with a registered model version, in the batch pool.

The scoring pipeline (Ray) and the scorer (torch) are bound on first use, so that parsing
a batch spec loads neither.
"""

from typing import TYPE_CHECKING

from tandem._lazy import lazy_exports
from tandem.batch.config import BatchPredictSpec, parse_model_ref
from tandem.batch.output import BatchResult, read_summary

if TYPE_CHECKING:
    from tandem.batch.pipeline import preflight
    from tandem.batch.transform import input_columns
else:
    __getattr__ = lazy_exports(
        __name__,
        {"tandem.batch.pipeline": ("preflight",), "tandem.batch.transform": ("input_columns",)},
    )

__all__ = [
    "BatchPredictSpec",
    "BatchResult",
    "input_columns",
    "parse_model_ref",
    "preflight",
    "read_summary",
]
