"""Data ingest: Parquet on any fsspec URI, checked, read with Ray Data, preprocessed.

``tandem.data.ingest`` (Ray) is imported by the training job itself; this face stays free
of Ray: ``read_parquet`` (the one Parquet reader, ``tandem.data.read``) is imported on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tandem.data.columns import LABEL_KEY, input_key
from tandem.data.digits import write_digits
from tandem.data.source import ParquetSource, open_source

if TYPE_CHECKING:
    from tandem.data.read import read_parquet


def __getattr__(name: str) -> Any:
    if name == "read_parquet":
        from tandem.data.read import read_parquet

        return read_parquet
    raise AttributeError(f"module 'tandem.data' has no attribute {name!r}")


__all__ = [
    "LABEL_KEY",
    "ParquetSource",
    "input_key",
    "open_source",
    "read_parquet",
    "write_digits",
]
