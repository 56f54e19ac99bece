"""Where training data lives and which columns are features and label."""

from __future__ import annotations

from pydantic import Field, field_validator

from tandem.specs.base import Spec


class DatasetSpec(Spec):
    train: str = Field(min_length=1)
    """fsspec URI of a Parquet file or folder with the training rows."""
    validation: str | None = None
    """fsspec URI of the validation rows; when absent, a seeded split of ``train``."""
    features: list[str] = Field(min_length=1)
    """Feature columns in model input order, or one fixed-size-list column."""
    label: str = Field(min_length=1)
    """Label column: integer classes for classification, a float for regression."""
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of ``train`` held out for validation when ``validation`` is absent."""

    @field_validator("features")
    @classmethod
    def _unique_features(cls, features: list[str]) -> list[str]:
        duplicates = sorted({f for f in features if features.count(f) > 1})
        if duplicates:
            raise ValueError(f"feature columns must be unique; repeated: {duplicates}")
        return features
