"""Data ingest: Parquet on any fsspec URI, checked, read with Ray Data, preprocessed.

``tandem.data.ingest`` (Ray) and ``tandem.data.read`` (the one Parquet reader, Ray
Data) are imported on first use of their names, so this face stays free of Ray.
"""

from typing import TYPE_CHECKING

from tandem._lazy import lazy_exports
from tandem.data.columns import LABEL_KEY, input_key
from tandem.data.digits import FEATURES, write_digits
from tandem.data.source import ParquetSource, open_source

if TYPE_CHECKING:
    from tandem.data.ingest import CheckedData, PreparedData, check, prepare
    from tandem.data.read import read_parquet
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "tandem.data.ingest": ("CheckedData", "PreparedData", "check", "prepare"),
            "tandem.data.read": ("read_parquet",),
        },
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
    "read_parquet",
    "write_digits",
]
