"""One v2 input tensor → its model input's raw form (``tandem.preprocess``): shape, datatype,
JSON ``data`` or a binary chunk, checked against the input's schema. Pure; every error is a
``MalformedRequest`` naming the input."""

from __future__ import annotations

import base64
import binascii
import math
import reprlib
from typing import Any

import numpy as np

import tandem.serve.binary as binary
from tandem.errors import MalformedRequest
from tandem.preprocess import Raw
from tandem.registry import InputSchema
from tandem.serve.binary import bad_input

ACCEPTED = {
    "tabular": ("FP32", "FP64"),
    "tensor": ("FP32", "FP64", "UINT8"),
    "image": ("BYTES",),
    "sequence": ("INT64", "INT32"),
}
"""Datatypes a request may send for each input kind (the first is the advertised one)."""
INTEGER_RANGES = {
    "UINT8": (0, 255),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
}


def shown(value: Any) -> str:
    """A short ``repr`` of a client's value for an error message: bounded in length and
    nesting, so a huge or 900-deep value is neither echoed back whole nor recursed into."""
    return reprlib.repr(value)


def parameters(holder: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise MalformedRequest(f'{where}: "parameters" must be an object (got {shown(parameters)})')
    return parameters


def _expected_shape(schema: InputSchema) -> str:
    if schema.kind == "image":
        return "[N]"
    if schema.kind == "sequence":
        return f"[N, L] with 1 ≤ L ≤ {schema.shape[0]}"
    return f"[N, {', '.join(map(str, schema.shape))}]"


def tensor_shape(schema: InputSchema, tensor: dict[str, Any], max_rows: int) -> tuple[int, ...]:
    shape = tensor.get("shape")
    rank = 1 if schema.kind == "image" else 1 + len(schema.shape)
    if (
        not isinstance(shape, list)
        or len(shape) != rank
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise bad_input(
            schema.name,
            f'"shape" must be {_expected_shape(schema)} with N ≥ 1 rows (got {shown(shape)})',
        )
    if schema.kind == "tabular" and shape[1] != schema.shape[0]:
        raise bad_input(
            schema.name, f"expected {schema.shape[0]} features per row, shape says {shape[1]}"
        )
    if schema.kind == "tensor" and shape[1:] != schema.shape:
        raise bad_input(schema.name, f"expected rows of shape {schema.shape}, shape says {shape}")
    if schema.kind == "sequence" and not 1 <= shape[1] <= schema.shape[0]:
        raise bad_input(
            schema.name,
            f"sequences must hold 1 to {schema.shape[0]} token ids (max_length); shape says "
            f"{shape[1]}",
        )
    if shape[0] == 0:
        raise bad_input(schema.name, f"empty batch: shape {shape}; send at least one row")
    if shape[0] > max_rows:
        raise bad_input(
            schema.name, f"batch of {shape[0]} rows exceeds this deployment's limit of {max_rows}"
        )
    return tuple(shape)


def check_datatype(schema: InputSchema, tensor: dict[str, Any]) -> None:
    datatype = tensor.get("datatype")
    if datatype not in ACCEPTED[schema.kind]:
        raise bad_input(
            schema.name,
            f"unsupported datatype {shown(datatype)} for a {schema.kind} input; send "
            f"{' or '.join(ACCEPTED[schema.kind])}",
        )


def binary_size(name: str, tensor: dict[str, Any], shape: tuple[int, ...]) -> int | None:
    """The input's ``binary_data_size``, checked against its shape before any byte is cut."""
    size = parameters(tensor, f"input {name!r}").get("binary_data_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad_input(name, f"binary_data_size must be a byte count (got {shown(size)})")
    if "data" in tensor:
        raise bad_input(name, 'send either "data" or parameters.binary_data_size, not both')
    datatype = tensor["datatype"]
    if datatype in binary.WIRE_TYPES:  # BYTES elements vary in length
        expected = math.prod(shape) * binary.WIRE_TYPES[datatype].itemsize
        if size != expected:
            raise bad_input(
                name,
                f"binary_data_size is {size} bytes, but {datatype} of shape {list(shape)} "
                f"takes {expected}",
            )
    return size


def _json_numbers(name: str, data: Any, shape: tuple[int, ...], datatype: str) -> np.ndarray:
    if not isinstance(data, list):
        raise bad_input(name, '"data" must be a list of numbers (flat row-major or nested)')
    try:
        array = np.asarray(data)
    except ValueError:  # rows of different lengths, or nested deeper than numpy's 64 dims
        raise bad_input(
            name, '"data" is ragged: send a flat list or nested rows of the same length'
        ) from None
    kinds = "iuf" if datatype.startswith("FP") else "iu"
    if array.dtype.kind not in kinds or array.dtype == np.bool_:
        what = "numbers" if datatype.startswith("FP") else "integers"
        raise bad_input(name, f'{datatype} "data" must hold only {what}')
    expected = math.prod(shape)
    if array.size != expected:
        raise bad_input(
            name, f'"data" holds {array.size} values but shape {list(shape)} needs {expected}'
        )
    if array.ndim > 1 and array.shape != shape:
        raise bad_input(
            name, f'nested "data" has shape {list(array.shape)}, but "shape" says {list(shape)}'
        )
    if datatype in INTEGER_RANGES and array.size:
        low, high = INTEGER_RANGES[datatype]
        if int(array.min()) < low or int(array.max()) > high:
            raise bad_input(name, f'"data" holds values outside the {datatype} range')
    return array.reshape(shape)


def _numbers(
    schema: InputSchema, tensor: dict[str, Any], shape: tuple[int, ...], chunk: memoryview | None
) -> np.ndarray:
    """A numeric input as float32 (tabular, tensor), uint8 (tensor) or int64 (sequence)."""
    datatype = tensor["datatype"]
    if chunk is None:
        values = _json_numbers(schema.name, tensor.get("data"), shape, datatype)
    else:
        values = binary.numbers(chunk, shape, datatype)
    if schema.kind == "sequence":
        return values.astype(np.int64)
    if datatype == "UINT8":
        return values.astype(np.uint8)
    with np.errstate(over="ignore"):  # values beyond FP32 become inf, refused just below
        floats = values.astype(np.float32)
    if not np.isfinite(floats).all():
        raise bad_input(
            schema.name, "data holds NaN or Inf (or values beyond FP32 range); send finite numbers"
        )
    return floats


def _images(name: str, data: Any, rows: int) -> list[bytes]:
    """Encoded images from JSON ``data``: one base64 string per row."""
    if not isinstance(data, list) or len(data) != rows:
        raise bad_input(name, f'"data" must be a list of {rows} base64 strings, one per image')
    images = []
    for row, text in enumerate(data):
        if not isinstance(text, str):
            raise bad_input(name, f'"data"[{row}] must be a base64 string of an encoded image')
        try:
            images.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise bad_input(name, f'"data"[{row}] is not valid base64') from None
    return images


def raw_value(
    schema: InputSchema, tensor: dict[str, Any], shape: tuple[int, ...], chunk: memoryview | None
) -> Raw:
    if schema.kind != "image":
        return _numbers(schema, tensor, shape, chunk)
    if chunk is None:
        return _images(schema.name, tensor.get("data"), shape[0])
    return binary.byte_elements(schema.name, chunk, shape[0])
