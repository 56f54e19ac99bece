"""Data ingest: Parquet on any fsspec URI, checked, read with Ray Data, preprocessed."""

from tandem.data.digits import write_digits
from tandem.data.source import ParquetSource, open_source

__all__ = ["ParquetSource", "open_source", "write_digits"]
