"""The Open Inference Protocol (KServe v2) for any Tandem model: pure, no Ray, no HTTP.

A request carries every input of the model, by name, as JSON ``data`` or as binary data
after the JSON (``tandem.serve.binary``). Each input kind has its tensor form:

- tabular: FP32 or FP64 ``[N, F]``, ``data`` flat (row-major) or nested
- tensor: FP32, FP64 or UINT8 ``[N, *shape]``
- image: BYTES ``[N]``, one encoded image per row (base64 strings in JSON ``data``)
- sequence: INT64 or INT32 ``[N, L]``, 1 ≤ L ≤ max_length, zero-padded by the client

Parsing yields each input's *raw* form (``tandem.preprocess``) in the manifest's order, or
raises ``RequestError`` saying what was expected, naming the input; the HTTP edge only
maps the error's ``status`` onto the response.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import reprlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from tandem import __version__
from tandem.errors import RequestError
from tandem.preprocess import Raw
from tandem.registry import InputSchema, Manifest
from tandem.serve import binary
from tandem.serve.binary import BAD_REQUEST, bad_input

UNPROCESSABLE = 422
PLATFORM = "tandem_pytorch"
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


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of the model's signature; ``-1`` marks a free dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class InferRequest:
    raws: list[Raw]
    """Each input's raw form, in the manifest's input order, all of ``rows`` rows."""
    rows: int
    id: str | None
    outputs: tuple[str, ...]
    """Outputs to return, in the model's output order (all of them unless asked)."""
    binary: frozenset[str]
    """Those of ``outputs`` to return as binary data."""


@dataclass(frozen=True)
class InferResponse:
    body: bytes
    json_length: int | None
    """Length of the JSON part when binary outputs follow it; ``None`` for plain JSON."""


def input_spec(schema: InputSchema) -> TensorSpec:
    if schema.kind == "image":
        return TensorSpec(schema.name, "BYTES", (-1,))
    if schema.kind == "sequence":
        return TensorSpec(schema.name, "INT64", (-1, -1))
    return TensorSpec(schema.name, "FP32", (-1, *schema.shape))


def output_specs(manifest: Manifest) -> tuple[TensorSpec, ...]:
    if manifest.task == "classification":
        return (
            TensorSpec("probabilities", "FP32", (-1, manifest.out_features)),
            TensorSpec("label", "INT64", (-1,)),
        )
    return (TensorSpec("prediction", "FP32", (-1, *manifest.target.shape)),)


def model_metadata(manifest: Manifest, versions: list[int]) -> dict[str, Any]:
    """``GET /v2/models/{name}``: signature plus the versions this deployment serves."""
    return {
        "name": manifest.name,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": [input_spec(schema).as_json() for schema in manifest.inputs],
        "outputs": [spec.as_json() for spec in output_specs(manifest)],
    }


def server_metadata() -> dict[str, Any]:
    """``GET /v2``."""
    return {"name": "tandem", "version": __version__, "extensions": ["binary_tensor_data"]}


def _bad(message: str) -> RequestError:
    return RequestError(message, BAD_REQUEST)


def _shown(value: Any) -> str:
    """A short ``repr`` of a client's value for an error message: bounded in length and
    nesting, so a huge or 900-deep value is neither echoed back whole nor recursed into."""
    return reprlib.repr(value)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except RecursionError:
        # json recurses once per [ or {; no v2 request nests deeper than its tensors' shapes.
        raise _bad("request body nests JSON arrays or objects too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _bad(f"request body is not valid JSON ({error}); send a v2 infer request") from None
    except ValueError:  # json.loads reads digits with int(), which refuses > 4300 of them
        raise _bad("request body holds an integer too long to read (over 4300 digits)") from None
    if not isinstance(payload, dict):
        raise _bad('request body must be a JSON object like {"inputs": [...]}')
    return payload


def _parameters(holder: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _bad(f'{where}: "parameters" must be an object (got {_shown(parameters)})')
    return parameters


def _input_tensors(payload: dict[str, Any], manifest: Manifest) -> list[dict[str, Any]]:
    """The request's tensors in request order: each an object naming a model input, every
    model input exactly once."""
    expected = [schema.name for schema in manifest.inputs]
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad(f'missing "inputs": send a list with one tensor per input {expected}')
    seen: set[str] = set()
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise _bad(f'"inputs"[{index}] must be an object {{"name": ..., "shape": ...}}')
        name = tensor.get("name")
        if name not in expected:
            raise _bad(f"unknown input tensor {_shown(name)}; this model expects {expected}")
        if name in seen:
            raise bad_input(name, 'sent twice in "inputs"')
        seen.add(name)
    missing = [name for name in expected if name not in seen]
    if missing:
        raise bad_input(missing[0], f"missing from the request; this model needs {expected}")
    return inputs


def _expected_shape(schema: InputSchema) -> str:
    if schema.kind == "image":
        return "[N]"
    if schema.kind == "sequence":
        return f"[N, L] with 1 ≤ L ≤ {schema.shape[0]}"
    return f"[N, {', '.join(map(str, schema.shape))}]"


def _shape(schema: InputSchema, tensor: dict[str, Any], max_rows: int) -> tuple[int, ...]:
    shape = tensor.get("shape")
    rank = 1 if schema.kind == "image" else 1 + len(schema.shape)
    if (
        not isinstance(shape, list)
        or len(shape) != rank
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise bad_input(
            schema.name,
            f'"shape" must be {_expected_shape(schema)} with N ≥ 1 rows (got {_shown(shape)})',
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


def _check_datatype(schema: InputSchema, tensor: dict[str, Any]) -> None:
    datatype = tensor.get("datatype")
    if datatype not in ACCEPTED[schema.kind]:
        raise bad_input(
            schema.name,
            f"unsupported datatype {_shown(datatype)} for a {schema.kind} input; send "
            f"{' or '.join(ACCEPTED[schema.kind])}",
        )


def _rows(shapes: dict[str, tuple[int, ...]]) -> int:
    """The batch size every input agrees on."""
    (first, shape), *others = shapes.items()
    for name, other in others:
        if other[0] != shape[0]:
            raise bad_input(
                name,
                f"has {other[0]} rows but input {first!r} has {shape[0]}; every input needs "
                "the same N",
            )
    return shape[0]


def _binary_size(name: str, tensor: dict[str, Any], shape: tuple[int, ...]) -> int | None:
    """The input's ``binary_data_size``, checked against its shape before any byte is cut."""
    size = _parameters(tensor, f"input {name!r}").get("binary_data_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad_input(name, f"binary_data_size must be a byte count (got {_shown(size)})")
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


def _raw(
    schema: InputSchema, tensor: dict[str, Any], shape: tuple[int, ...], chunk: memoryview | None
) -> Raw:
    if schema.kind != "image":
        return _numbers(schema, tensor, shape, chunk)
    if chunk is None:
        return _images(schema.name, tensor.get("data"), shape[0])
    return binary.byte_elements(schema.name, chunk, shape[0])


def _request_id(payload: dict[str, Any]) -> str | None:
    request_id = payload.get("id")
    if isinstance(request_id, (dict, list)):
        raise _bad(f'"id" must be a string (got {_shown(request_id)})')
    return None if request_id is None else str(request_id)


def _flag(parameters: dict[str, Any], key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"parameters.{key} must be true or false (got {_shown(value)})")
    return value


def _requested_outputs(
    payload: dict[str, Any], manifest: Manifest
) -> tuple[tuple[str, ...], frozenset[str]]:
    """Output names to return and those to return as binary: ``binary_data`` of an output
    overrides the request's ``binary_data_output``."""
    known = [spec.name for spec in output_specs(manifest)]
    all_binary = _flag(_parameters(payload, "request"), "binary_data_output", False)
    requested = payload.get("outputs")
    if requested is None:
        return tuple(known), frozenset(known if all_binary else ())
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise _bad(f'"outputs" must be a list of {{"name": ...}} with names from {known}')
    unknown = [o["name"] for o in requested if o["name"] not in known]
    if unknown:
        raise _bad(f"unknown output(s) {_shown(unknown)}; this model has {known}")
    binary_names = {
        o["name"]
        for o in requested
        if _flag(_parameters(o, f"output {o['name']!r}"), "binary_data", all_binary)
    }
    names = {o["name"] for o in requested}
    return tuple(n for n in known if n in names), frozenset(binary_names)


def parse_infer_request(
    body: bytes, manifest: Manifest, max_rows: int, header_length: str | None = None
) -> InferRequest:
    """Validate a v2 infer request against the model's signature. ``header_length`` is the
    ``Inference-Header-Content-Length`` header, present when binary data follows the JSON."""
    header, tail = binary.split_body(body, header_length)
    payload = _decode(header)
    tensors = {t["name"]: t for t in _input_tensors(payload, manifest)}
    shapes = {}
    for schema in manifest.inputs:
        shapes[schema.name] = _shape(schema, tensors[schema.name], max_rows)
        _check_datatype(schema, tensors[schema.name])
    rows = _rows(shapes)
    sizes = [(name, _binary_size(name, tensor, shapes[name])) for name, tensor in tensors.items()]
    chunks = binary.cut_chunks([(name, s) for name, s in sizes if s is not None], tail)
    raws = [
        _raw(s, tensors[s.name], shapes[s.name], chunks.get(s.name)) for s in manifest.inputs
    ]
    outputs, binary_outputs = _requested_outputs(payload, manifest)
    return InferRequest(
        raws=raws,
        rows=rows,
        id=_request_id(payload),
        outputs=outputs,
        binary=binary_outputs,
    )


def infer_response(
    manifest: Manifest, request: InferRequest, outputs: dict[str, np.ndarray]
) -> InferResponse:
    """The v2 response for one request's slice of model outputs, binary where asked."""
    if not all(np.isfinite(values).all() for values in outputs.values()):
        # Finite inputs far outside the training range (say 3e38) can overflow in the model.
        raise RequestError(
            "the model's outputs are NaN or Inf for these inputs; send values in the range "
            "of the training data",
            UNPROCESSABLE,
        )
    head: dict[str, Any] = {"model_name": manifest.name, "model_version": str(manifest.version)}
    if request.id is not None:
        head["id"] = request.id
    tensors, chunks = [], []
    for spec in output_specs(manifest):
        if spec.name not in request.outputs:
            continue
        values = outputs[spec.name]
        tensor: dict[str, Any] = {**spec.as_json(), "shape": list(values.shape)}
        if spec.name in request.binary:
            chunks.append(binary.tensor_bytes(values, spec.datatype))
            tensor["parameters"] = {"binary_data_size": len(chunks[-1])}
        else:
            tensor["data"] = values.reshape(-1).tolist()
        tensors.append(tensor)
    head["outputs"] = tensors
    header = json.dumps(head, allow_nan=False).encode()
    if not chunks:
        return InferResponse(header, None)
    return InferResponse(header + b"".join(chunks), len(header))


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
