"""Offline scoring of Parquet with a registered model version, in the batch pool."""

from tandem.batch.config import BatchPredictSpec, parse_model_ref
from tandem.batch.output import BatchResult

__all__ = ["BatchPredictSpec", "BatchResult", "parse_model_ref"]
