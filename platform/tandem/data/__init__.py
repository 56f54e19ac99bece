"""Data ingest: Parquet on any fsspec URI, checked, read with Ray Data, preprocessed.

``tandem.data.ingest`` (Ray) is imported by the training job itself: its names here are
bound on first use, so this face stays free of Ray.
"""

from typing import TYPE_CHECKING

from tandem._lazy import lazy_exports
from tandem.data.columns import LABEL_KEY, input_key
from tandem.data.digits import FEATURES, write_digits
from tandem.data.source import ParquetSource, open_source

if TYPE_CHECKING:
    from tandem.data.ingest import CheckedData, PreparedData, check, prepare
else:
    __getattr__ = lazy_exports(
        __name__, {"tandem.data.ingest": ("CheckedData", "PreparedData", "check", "prepare")}
    )

__all__ = [
    "FEATURES",
    "LABEL_KEY",
    "CheckedData",
    "ParquetSource",
    "PreparedData",
    "check",
    "input_key",
    "open_source",
    "prepare",
    "write_digits",
]
