"""Raw values of one model input → the array the model receives. One implementation, used
by training (inside Ray Data tasks), online serving and batch scoring.

Each input has a *raw* form that every caller can produce:

- tabular: numbers ``[N, F]``
- tensor: numbers ``[N, *shape]`` (any numeric type)
- image: ``N`` encoded images (bytes)
- sequence: ``N`` token-id lists, ragged, or ints ``[N, L]``

``gather`` takes it from a Parquet batch (Ray Data's numpy format); the request parser of
``tandem.serve`` builds it from a v2 tensor. ``model_array`` applies the fitted
preprocessing from the manifest's ``InputSchema``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np

from tandem.errors import InputError
from tandem.preprocess.images import decode_image
from tandem.registry import InputSchema

Raw = Any
"""An input's raw form (see the module docstring)."""


def feature_matrix(batch: dict[str, np.ndarray], columns: list[str]) -> np.ndarray:
    """``[N, F]`` float32 from numeric columns or from one list column."""
    if len(columns) == 1:
        column = _stacked(batch[columns[0]])
        if column.ndim > 1:
            return np.ascontiguousarray(column, dtype=np.float32).reshape(len(column), -1)
    return np.stack([batch[name] for name in columns], axis=1).astype(np.float32, copy=False)


def _stacked(column: np.ndarray) -> np.ndarray:
    # A list column may arrive as an object array of arrays, one per row.
    if column.dtype == object and len(column) and isinstance(column[0], np.ndarray):
        return np.stack(list(column))
    return column


def gather(schema: InputSchema, batch: dict[str, np.ndarray]) -> Raw:
    """The input's raw form from a Parquet batch holding its columns."""
    if schema.kind == "tabular":
        return feature_matrix(batch, schema.columns)
    column = batch[schema.columns[0]]
    if schema.kind == "tensor":
        return _stacked(column).reshape(len(column), *schema.shape)
    return column  # image: bytes per row; sequence: one id array per row


def model_array(schema: InputSchema, raw: Raw) -> np.ndarray:
    """The preprocessed batch the model receives for this input (``[N, *shape]``)."""
    if schema.kind == "sequence":
        return token_matrix(schema, raw)
    if schema.kind == "image":
        values = decode_images(schema, raw)
    else:
        values = np.asarray(raw).astype(np.float32, copy=False).reshape(-1, *schema.shape)
    if schema.normalize == "fitted":
        assert schema.mean is not None and schema.std is not None
        values = standardise(values, schema.mean, schema.std)
    return np.ascontiguousarray(values, dtype=np.float32)


def standardise(values: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """``(values - mean) / std`` with one statistic per slot of axis 1 (feature or channel)."""
    slots = (1, len(mean)) + (1,) * (values.ndim - 2)
    m = np.asarray(mean, dtype=np.float32).reshape(slots)
    s = np.asarray(std, dtype=np.float32).reshape(slots)
    with np.errstate(over="ignore"):  # values near FP32's limit become inf; callers check outputs
        return (values - m) / s


def decode_images(schema: InputSchema, encoded: Sequence[Any]) -> np.ndarray:
    """``[N, C, H, W]`` float32 in [0, 1]; ``InputError`` naming the row that fails."""
    out = np.empty((len(encoded), *schema.shape), dtype=np.float32)
    for row, data in enumerate(encoded):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InputError(schema.name, f"row {row}: expected encoded image bytes")
        try:
            out[row] = decode_image(bytes(data), schema.shape)
        except ValueError as error:
            raise InputError(schema.name, f"row {row}: {error}") from None
    return out


def token_matrix(schema: InputSchema, raw: Raw) -> np.ndarray:
    """int64 ``[N, max_length]``: truncated or zero-padded; ids checked against the
    fitted vocabulary (``InputError`` for a negative id or one past it)."""
    length = schema.shape[0]
    if isinstance(raw, np.ndarray) and raw.dtype != object:
        rows = raw.reshape(len(raw), -1)
        out = np.zeros((len(rows), length), dtype=np.int64)
        width = min(rows.shape[1], length)
        out[:, :width] = rows[:, :width]
    else:
        out = np.zeros((len(raw), length), dtype=np.int64)
        for row, ids in enumerate(raw):
            kept = np.asarray(ids, dtype=np.int64)[:length]
            out[row, : len(kept)] = kept
    if out.size and out.min() < 0:
        row = int(np.argwhere(out < 0)[0][0])
        raise InputError(schema.name, f"row {row}: token ids must be ≥ 0 (0 is padding)")
    if schema.vocab_size is not None and out.size and out.max() >= schema.vocab_size:
        row = int(np.argwhere(out >= schema.vocab_size)[0][0])
        raise InputError(
            schema.name,
            f"row {row}: token id {int(out[row].max())} is outside the vocabulary "
            f"(ids 0..{schema.vocab_size - 1} were seen in training)",
        )
    return out


def example_raw(schema: InputSchema) -> Raw:
    """The stored example row as a one-row raw batch."""
    if schema.kind == "image":
        assert isinstance(schema.example, str)
        return [base64.b64decode(schema.example)]
    dtype = np.int64 if schema.kind == "sequence" else np.float32
    values = np.asarray(schema.example, dtype=dtype)
    return values.reshape(1, -1) if schema.kind == "sequence" else values.reshape(1, *schema.shape)


def example_value(schema: InputSchema, raw: Raw) -> list[int] | list[float] | str:
    """Row 0 of a raw batch as the manifest stores it."""
    if schema.kind == "image":
        return base64.b64encode(bytes(raw[0])).decode("ascii")
    if schema.kind == "sequence":
        return [int(v) for v in np.asarray(raw[0]).reshape(-1)]
    return [float(v) for v in np.asarray(raw[0], dtype=np.float64).reshape(-1)]
