"""The Open Inference Protocol (KServe v2) for one tabular model: pure, no Ray, no HTTP.

A request carries one input tensor ``[N, F]`` (the manifest's features, in its
order) as FP32 or FP64, with ``data`` flat (row-major) or nested. Parsing turns
it into a float32 numpy array or raises ``RequestError`` saying what was
expected; the HTTP edge only maps the error's ``status`` onto the response.
"""

from __future__ import annotations

import json
import reprlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from tandem.errors import RequestError
from tandem.registry.manifest import Manifest

BAD_REQUEST = 400
UNPROCESSABLE = 422
DEFAULT_INPUT_NAME = "input"
ACCEPTED_DATATYPES = ("FP32", "FP64")
PLATFORM = "tandem_pytorch"


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of the model's signature; ``-1`` marks the batch dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class InferRequest:
    rows: np.ndarray
    """float32 ``[N, F]``, finite, in the manifest's feature order."""
    id: str | None
    outputs: tuple[str, ...] | None
    """Output tensors the client asked for; ``None`` means all of them."""


def input_spec(manifest: Manifest) -> TensorSpec:
    name = manifest.input.source_column or DEFAULT_INPUT_NAME
    return TensorSpec(name, "FP32", (-1, manifest.input.num_features))


def output_specs(manifest: Manifest) -> tuple[TensorSpec, ...]:
    if manifest.task == "classification":
        return (
            TensorSpec("probabilities", "FP32", (-1, manifest.out_features)),
            TensorSpec("label", "INT64", (-1,)),
        )
    return (TensorSpec("prediction", "FP32", (-1,)),)


def model_metadata(manifest: Manifest, versions: list[int]) -> dict[str, Any]:
    """``GET /v2/models/{name}``: signature plus the versions this deployment serves."""
    return {
        "name": manifest.name,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": [input_spec(manifest).as_json()],
        "outputs": [spec.as_json() for spec in output_specs(manifest)],
    }


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
        # json recurses once per [ or {; no v2 request nests deeper than [N][F] in an object.
        raise _bad("request body nests JSON arrays or objects too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _bad(f"request body is not valid JSON ({error}); send a v2 infer request") from None
    except ValueError:  # json.loads reads digits with int(), which refuses > 4300 of them
        raise _bad("request body holds an integer too long to read (over 4300 digits)") from None
    if not isinstance(payload, dict):
        raise _bad('request body must be a JSON object like {"inputs": [...]}')
    return payload


def _single_input(payload: dict[str, Any], expected: TensorSpec) -> dict[str, Any]:
    inputs = payload.get("inputs")
    example = f'{{"name": "{expected.name}", "shape": [N, {expected.shape[1]}], ...}}'
    if not isinstance(inputs, list) or not inputs:
        raise _bad(f'missing "inputs": send a list with one tensor {example}')
    if len(inputs) != 1:
        raise _bad(f'"inputs" must hold exactly one tensor {example} (got {len(inputs)})')
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise _bad(f'"inputs"[0] must be an object {example}')
    if tensor.get("name") != expected.name:
        raise _bad(
            f"unknown input tensor {_shown(tensor.get('name'))}; "
            f"this model expects {expected.name!r}"
        )
    return tensor


def _shape(tensor: dict[str, Any], num_features: int) -> tuple[int, int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise _bad(f'"shape" must be [N, {num_features}] with N ≥ 1 rows (got {_shown(shape)})')
    rows, columns = shape
    if columns != num_features:
        raise _bad(f"expected {num_features} features per row, shape says {columns}")
    if rows == 0:
        raise _bad("empty batch: shape [0, F]; send at least one row")
    return rows, columns


def _values(tensor: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    datatype = tensor.get("datatype")
    if datatype not in ACCEPTED_DATATYPES:
        raise _bad(f"unsupported datatype {_shown(datatype)}; send FP32 or FP64")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise _bad('"data" must be a list of numbers (flat row-major or nested [N][F])')
    try:
        array = np.asarray(data)
    except ValueError:  # rows of different lengths, or nested deeper than numpy's 64 dims
        raise _bad('"data" is ragged: send a flat list or [N][F] rows of the same length') from None
    if array.dtype.kind not in "iuf" or array.dtype == np.bool_:
        raise _bad('"data" must hold only numbers')
    expected = shape[0] * shape[1]
    if array.size != expected:
        raise _bad(f'"data" holds {array.size} values but shape {list(shape)} needs {expected}')
    if array.ndim > 1 and array.shape != shape:
        raise _bad(f'nested "data" has shape {list(array.shape)}, but "shape" says {list(shape)}')
    with np.errstate(over="ignore"):  # values beyond FP32 become inf, refused just below
        rows = array.reshape(shape).astype(np.float32)
    if not np.isfinite(rows).all():
        raise _bad("data holds NaN or Inf (or values beyond FP32 range); send finite numbers")
    return rows


def _requested_outputs(payload: dict[str, Any], manifest: Manifest) -> tuple[str, ...] | None:
    requested = payload.get("outputs")
    if requested is None:
        return None
    known = [spec.name for spec in output_specs(manifest)]
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise _bad(f'"outputs" must be a list of {{"name": ...}} with names from {known}')
    names = tuple(o["name"] for o in requested)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise _bad(f"unknown output(s) {_shown(unknown)}; this model has {known}")
    return names


def parse_infer_request(body: bytes, manifest: Manifest, max_rows: int) -> InferRequest:
    """Validate a v2 infer request body against the model's signature."""
    payload = _decode(body)
    spec = input_spec(manifest)
    tensor = _single_input(payload, spec)
    shape = _shape(tensor, manifest.input.num_features)
    if shape[0] > max_rows:
        raise _bad(f"batch of {shape[0]} rows exceeds this deployment's limit of {max_rows}")
    rows = _values(tensor, shape)
    request_id = payload.get("id")
    if isinstance(request_id, (dict, list)):
        raise _bad(f'"id" must be a string (got {_shown(request_id)})')
    return InferRequest(
        rows=rows,
        id=None if request_id is None else str(request_id),
        outputs=_requested_outputs(payload, manifest),
    )


def infer_response(
    manifest: Manifest, request: InferRequest, outputs: dict[str, np.ndarray]
) -> bytes:
    """The v2 response body for one request's slice of model outputs."""
    if not all(np.isfinite(values).all() for values in outputs.values()):
        # Finite inputs far outside the training range (say 3e38) can overflow in the model.
        raise RequestError(
            "the model's outputs are NaN or Inf for these inputs; send values in the range "
            "of the training data",
            UNPROCESSABLE,
        )
    body: dict[str, Any] = {"model_name": manifest.name, "model_version": str(manifest.version)}
    if request.id is not None:
        body["id"] = request.id
    wanted = request.outputs
    body["outputs"] = [
        {
            "name": spec.name,
            "datatype": spec.datatype,
            "shape": list(outputs[spec.name].shape),
            "data": outputs[spec.name].reshape(-1).tolist(),
        }
        for spec in output_specs(manifest)
        if wanted is None or spec.name in wanted
    ]
    return json.dumps(body, allow_nan=False).encode()


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
