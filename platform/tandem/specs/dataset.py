"""Where training data lives, which columns feed the model's inputs and which is the label."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from tandem.specs.base import Spec

INPUT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
DEFAULT_INPUT_NAME = "input"
"""The name of the one tabular input that ``features:`` stands for."""
Normalize = Literal["fitted", "none"]


def unique(what: str, values: list[str]) -> list[str]:
    """``values``, or a ``ValueError`` listing the repeated ones."""
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique; repeated: {repeated}")
    return values


class TabularInput(Spec):
    """Numeric scalar columns (or one fixed-size-list column) → FP32 ``[F]``, standardised."""

    kind: Literal["tabular"]
    name: str = Field(pattern=INPUT_NAME_PATTERN)
    """The input's name: the v2 request's tensor name and the ``inputs`` key of the factory."""
    columns: list[str] = Field(min_length=1)
    """Numeric columns in model order, or one fixed-size-list column of numbers."""

    @field_validator("columns")
    @classmethod
    def _unique(cls, columns: list[str]) -> list[str]:
        return unique("columns", columns)


class TensorInput(Spec):
    """A ``fixed_shape_tensor`` (or fixed-size-list) column of numbers → FP32 of ``shape``."""

    kind: Literal["tensor"]
    name: str = Field(pattern=INPUT_NAME_PATTERN)
    """The input's name: the v2 request's tensor name and the ``inputs`` key of the factory."""
    column: str = Field(min_length=1)
    """The Parquet column holding one tensor per row."""
    shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=8)
    """Shape of one row's tensor, without the batch axis, e.g. ``[3, 32, 32]``."""
    normalize: Normalize = "fitted"
    """``fitted``: standardise per channel (first axis) with training-split statistics;
    ``none``: only cast to FP32."""


class ImageInput(Spec):
    """A binary column of encoded PNG/JPEG → FP32 ``[C, H, W]`` in [0, 1], then normalised."""

    kind: Literal["image"]
    name: str = Field(pattern=INPUT_NAME_PATTERN)
    """The input's name: the v2 request's tensor name and the ``inputs`` key of the factory."""
    column: str = Field(min_length=1)
    """The Parquet column holding one encoded image per row."""
    shape: list[Annotated[int, Field(ge=1, le=8192)]] = Field(min_length=3, max_length=3)
    """``[channels, height, width]``; channels 1 (grey), 3 (RGB) or 4 (RGBA). Images of
    another size are resized."""
    normalize: Normalize = "fitted"
    """``fitted``: standardise per channel with training-split statistics; ``none``: [0, 1]."""

    @field_validator("shape")
    @classmethod
    def _channels(cls, shape: list[int]) -> list[int]:
        if shape[0] not in (1, 3, 4):
            raise ValueError(f"shape[0] is the channel count: write 1, 3 or 4 (got {shape[0]})")
        return shape


class SequenceInput(Spec):
    """A ``list<int>`` column of token ids (0 is padding) → INT64 ``[max_length]``."""

    kind: Literal["sequence"]
    name: str = Field(pattern=INPUT_NAME_PATTERN)
    """The input's name: the v2 request's tensor name and the ``inputs`` key of the factory."""
    column: str = Field(min_length=1)
    """The Parquet column holding one list of token ids per row."""
    max_length: int = Field(ge=1, le=1_000_000)
    """Longer sequences are truncated, shorter ones zero-padded to this length."""


InputSpec = Annotated[
    TabularInput | TensorInput | ImageInput | SequenceInput, Field(discriminator="kind")
]


class DatasetSpec(Spec):
    train: str = Field(min_length=1)
    """fsspec URI of a Parquet file or folder with the training rows."""
    validation: str | None = None
    """fsspec URI of the validation rows; when absent, a seeded split of ``train``."""
    inputs: list[InputSpec] | None = Field(None, min_length=1)
    """The model's inputs, in the order its ``forward`` takes them."""
    features: list[str] | None = Field(None, min_length=1)
    """Shorthand for one tabular input named ``input`` over these columns (or over one
    fixed-size-list column); give ``inputs`` or ``features``, not both."""
    label: str = Field(min_length=1)
    """Label column: integer classes for classification; a float or a fixed-size list of
    floats for regression."""
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of ``train`` held out for validation when ``validation`` is absent."""

    @field_validator("features")
    @classmethod
    def _unique_features(cls, features: list[str] | None) -> list[str] | None:
        return None if features is None else unique("feature columns", features)

    @field_validator("inputs")
    @classmethod
    def _unique_names(cls, inputs: list[Any] | None) -> list[Any] | None:
        unique("input names", [i.name for i in inputs or []])
        return inputs

    @model_validator(mode="after")
    def _inputs_or_features(self) -> DatasetSpec:
        if (self.inputs is None) == (self.features is None):
            raise ValueError(
                "give the model's inputs as `inputs: [...]` or the shorthand "
                "`features: [columns]`, exactly one of them"
            )
        columns = [c for i in self.model_inputs for c in input_columns(i)]
        if self.label in columns:
            raise ValueError(f"label column {self.label!r} is also an input column")
        return self

    @property
    def model_inputs(self) -> list[TabularInput | TensorInput | ImageInput | SequenceInput]:
        """The inputs in ``forward`` order, with ``features`` expanded to one tabular input."""
        if self.inputs is not None:
            return list(self.inputs)
        assert self.features is not None
        return [TabularInput(kind="tabular", name=DEFAULT_INPUT_NAME, columns=self.features)]


def input_columns(spec: TabularInput | TensorInput | ImageInput | SequenceInput) -> list[str]:
    """The Parquet columns one input reads."""
    return list(spec.columns) if isinstance(spec, TabularInput) else [spec.column]
