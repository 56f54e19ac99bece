"""The Open Inference Protocol (KServe v2) for any Tandem model: pure, no Ray, no HTTP.

A request carries every input of the model, by name, as JSON ``data`` or as binary data
after the JSON (``tandem.serve.binary``). Each input kind has its tensor form:

- tabular: FP32 or FP64 ``[N, F]``, ``data`` flat (row-major) or nested
- tensor: FP32, FP64 or UINT8 ``[N, *shape]``
- image: BYTES ``[N]``, one encoded image per row (base64 strings in JSON ``data``)
- sequence: INT64 or INT32 ``[N, L]``, 1 ≤ L ≤ max_length, zero-padded by the client

Parsing yields each input's *raw* form (``tandem.preprocess``) in the manifest's order, or
raises a ``tandem.errors.Rejected`` saying what was expected, naming the input; the HTTP
edge chooses the status from the error's type (``tandem.serve.statuses``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

import tandem.serve.binary as binary
from tandem.errors import MalformedRequest, UnusableOutputs
from tandem.preprocess import Raw
from tandem.registry import InputSchema, Manifest
from tandem.serve.binary import bad_input
from tandem.serve.tensors import (
    binary_size,
    check_datatype,
    parameters,
    raw_value,
    shown,
    tensor_shape,
)
from tandem.version import __version__

PLATFORM = "tandem_pytorch"


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


def _bad(message: str) -> MalformedRequest:
    return MalformedRequest(message)


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
            raise _bad(f"unknown input tensor {shown(name)}; this model expects {expected}")
        if name in seen:
            raise bad_input(name, 'sent twice in "inputs"')
        seen.add(name)
    missing = [name for name in expected if name not in seen]
    if missing:
        raise bad_input(missing[0], f"missing from the request; this model needs {expected}")
    return inputs


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


def _request_id(payload: dict[str, Any]) -> str | None:
    request_id = payload.get("id")
    if isinstance(request_id, (dict, list)):
        raise _bad(f'"id" must be a string (got {shown(request_id)})')
    return None if request_id is None else str(request_id)


def _flag(parameters: dict[str, Any], key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"parameters.{key} must be true or false (got {shown(value)})")
    return value


def _requested_outputs(
    payload: dict[str, Any], manifest: Manifest
) -> tuple[tuple[str, ...], frozenset[str]]:
    """Output names to return and those to return as binary: ``binary_data`` of an output
    overrides the request's ``binary_data_output``."""
    known = [spec.name for spec in output_specs(manifest)]
    all_binary = _flag(parameters(payload, "request"), "binary_data_output", False)
    requested = payload.get("outputs")
    if requested is None:
        return tuple(known), frozenset(known if all_binary else ())
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise _bad(f'"outputs" must be a list of {{"name": ...}} with names from {known}')
    unknown = [o["name"] for o in requested if o["name"] not in known]
    if unknown:
        raise _bad(f"unknown output(s) {shown(unknown)}; this model has {known}")
    binary_names = {
        o["name"]
        for o in requested
        if _flag(parameters(o, f"output {o['name']!r}"), "binary_data", all_binary)
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
        shapes[schema.name] = tensor_shape(schema, tensors[schema.name], max_rows)
        check_datatype(schema, tensors[schema.name])
    rows = _rows(shapes)
    sizes = [(name, binary_size(name, tensor, shapes[name])) for name, tensor in tensors.items()]
    chunks = binary.cut_chunks([(name, s) for name, s in sizes if s is not None], tail)
    raws = [
        raw_value(s, tensors[s.name], shapes[s.name], chunks.get(s.name)) for s in manifest.inputs
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
        raise UnusableOutputs(
            "the model's outputs are NaN or Inf for these inputs; send values in the range "
            "of the training data"
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
