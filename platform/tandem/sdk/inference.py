"""Open Inference Protocol (v2) over HTTP, client side: arrays in, named numpy outputs back.

Request building and response parsing are pure functions; ``InferenceClient``
only moves bytes with httpx. Any v2 server answers it, not only Tandem's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import numpy as np

from tandem.errors import RequestError

NUMPY_TYPES = {
    "FP32": np.float32,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "UINT8": np.uint8,
}
EncodedImages = Sequence[bytes]
"""An image input's rows: one encoded image (PNG, JPEG, ...) each."""
InputValue = np.ndarray | EncodedImages
Inputs = np.ndarray | Mapping[str, InputValue]
"""One array (a single-input model's, named separately) or every input by name."""


def infer_body(inputs: Inputs, input_name: str | None = None) -> dict[str, Any]:
    """A JSON v2 infer request. Arrays keep their kind: floats go as FP32, uint8 as UINT8,
    other integers (token ids) as INT64, each ``[N, ...]`` with the batch axis first;
    encoded images go as BYTES ``[N]``, base64 in ``data``."""
    if isinstance(inputs, Mapping):
        named = list(inputs.items())
    elif input_name is None:
        raise ValueError("name the input: infer_body(rows, input_name) or {input_name: rows}")
    else:
        named = [(input_name, inputs)]
    return {"inputs": [input_tensor(name, value) for name, value in named]}


def input_tensor(name: str, value: InputValue) -> dict[str, Any]:
    """One input as a v2 request tensor with its values in ``data``."""
    if _is_images(value):
        data = [base64.b64encode(bytes(image)).decode("ascii") for image in value]
        return {"name": name, "shape": [len(data)], "datatype": "BYTES", "data": data}
    array = np.asarray(value)
    if array.ndim < 2:
        raise ValueError(
            f"input {name!r}: rows must be at least a 2-D array, [N, F] or [N, *shape] "
            f"(got shape {list(array.shape)})"
        )
    datatype = _datatype(name, array)
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "data": array.astype(NUMPY_TYPES[datatype], copy=False).reshape(-1).tolist(),
    }


def _is_images(value: InputValue) -> bool:
    if isinstance(value, np.ndarray) and value.dtype != object:
        return False
    return len(value) > 0 and all(isinstance(row, (bytes, bytearray, memoryview)) for row in value)


def _datatype(name: str, array: np.ndarray) -> str:
    if array.dtype == np.uint8:
        return "UINT8"
    if array.dtype.kind in "iu":
        return "INT64"
    if array.dtype.kind == "f":
        return "FP32"
    raise ValueError(
        f"input {name!r}: send numbers or a list of encoded images (got {array.dtype} values)"
    )


def parse_outputs(body: dict[str, Any]) -> dict[str, np.ndarray]:
    """``outputs`` of a v2 response as arrays of their declared type and shape."""
    return {
        out["name"]: np.asarray(out["data"], dtype=NUMPY_TYPES.get(out["datatype"])).reshape(
            out["shape"]
        )
        for out in body["outputs"]
    }


def raise_for_status(response: httpx.Response) -> None:
    """A non-2xx answer as ``RequestError`` carrying the server's own message and status."""
    if response.is_success:
        return
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = response.text.strip() or response.reason_phrase
    raise RequestError(
        f"{response.request.method} {response.request.url}: {message}", response.status_code
    )


class InferenceClient:
    """Talks v2 to one HTTP endpoint (``http://host:port``), with an optional bearer token."""

    def __init__(self, endpoint: str, token: str | None = None, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.endpoint = endpoint.rstrip("/")
        self._http = httpx.Client(base_url=self.endpoint, headers=headers, timeout=timeout_s)

    def model_path(self, name: str, version: int | str | None = None) -> str:
        return f"/v2/models/{name}" + ("" if version is None else f"/versions/{version}")

    def metadata(self, name: str, version: int | str | None = None) -> dict[str, Any]:
        response = self._http.get(self.model_path(name, version))
        raise_for_status(response)
        return dict(response.json())

    def infer(
        self,
        name: str,
        inputs: Inputs,
        input_name: str | None = None,
        version: int | str | None = None,
    ) -> dict[str, np.ndarray]:
        """Outputs for one array (of a single-input model, named by ``input_name``) or for
        ``{input_name: array or encoded images}`` covering every input."""
        response = self._http.post(
            self.model_path(name, version) + "/infer", json=infer_body(inputs, input_name)
        )
        raise_for_status(response)
        return parse_outputs(response.json())

    def close(self) -> None:
        self._http.close()
