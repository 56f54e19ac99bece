"""Data ingest: Parquet on any fsspec URI, checked, read with Ray Data, preprocessed.

``tandem.data.ingest`` (Ray) is imported by the training job itself; this face stays free
of Ray.
"""

from tandem.data.columns import LABEL_KEY, input_key
from tandem.data.digits import FEATURES as DIGITS_FEATURES
from tandem.data.digits import write_digits
from tandem.data.source import ParquetSource, open_source

__all__ = [
    "DIGITS_FEATURES",
    "LABEL_KEY",
    "ParquetSource",
    "input_key",
    "open_source",
    "write_digits",
]
