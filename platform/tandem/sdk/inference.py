"""Open Inference Protocol (v2) over HTTP, client side: rows in, named numpy outputs back.

Request building and response parsing are pure functions; ``InferenceClient``
only moves bytes with httpx. Any v2 server answers it, not only Tandem's.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from tandem.errors import RequestError

NUMPY_TYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}


def infer_body(rows: np.ndarray, input_name: str) -> dict[str, Any]:
    if rows.ndim != 2:
        raise ValueError(f"rows must be a 2-D array [N, F] (got shape {list(rows.shape)})")
    return {
        "inputs": [
            {
                "name": input_name,
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.astype(np.float32, copy=False).reshape(-1).tolist(),
            }
        ]
    }


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
        self, name: str, rows: np.ndarray, input_name: str, version: int | str | None = None
    ) -> dict[str, np.ndarray]:
        response = self._http.post(
            self.model_path(name, version) + "/infer", json=infer_body(rows, input_name)
        )
        raise_for_status(response)
        return parse_outputs(response.json())

    def close(self) -> None:
        self._http.close()
