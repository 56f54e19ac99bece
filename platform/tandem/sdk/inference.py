"""Open Inference Protocol (v2) over HTTP, client side: arrays in, named numpy outputs back.

Request building, response parsing and the retry policy are pure functions;
``InferenceClient`` only moves bytes with httpx. Any v2 server answers it, not only
Tandem's.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, Field, model_validator

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


RETRY_STATUSES = frozenset({502, 503, 504})
"""Answers of a proxy or server that had no replica to give: bad gateway, unavailable
(backpressure or no replica up), gateway timeout. Any other status is the model's answer."""
RETRY_ERRORS = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
"""Transport errors of a connection that failed or closed without an answer (a replica
that went away). A read timeout is not among them: the server is there, only slow."""
Failure = httpx.TransportError | httpx.Response
"""What one attempt ended with when it did not succeed."""


class RetryPolicy(BaseModel, extra="forbid", frozen=True):
    """When to send an idempotent inference request again: on a connection that failed or
    closed without an answer and on 502/503/504, with exponential backoff, until a deadline."""

    deadline_s: float = Field(10.0, ge=0)
    """No retry starts later than this after the first attempt began; 0 never retries."""
    first_backoff_s: float = Field(0.05, gt=0)
    """Wait before the second attempt; each later wait doubles it."""
    max_backoff_s: float = Field(1.0, gt=0)
    """Longest wait between attempts, unless the server's ``Retry-After`` asks for more."""

    @model_validator(mode="after")
    def _backoff_in_order(self) -> RetryPolicy:
        if self.max_backoff_s < self.first_backoff_s:
            raise ValueError(
                f"retry.max_backoff_s must be ≥ first_backoff_s ({self.first_backoff_s}) "
                f"(got {self.max_backoff_s})"
            )
        return self

    def next_wait(
        self, attempt: int, failure: Failure, left_s: float, now: datetime | None = None
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up: the failure
        is not worth retrying, or the wait would end after the deadline (``left_s`` away).
        A ``Retry-After`` is the least the wait may be; ``now`` dates an HTTP-date one when
        the response has no ``Date`` header (default: this machine's clock)."""
        if isinstance(failure, httpx.Response):
            if failure.status_code not in RETRY_STATUSES:
                return None
        elif not isinstance(failure, RETRY_ERRORS):
            return None
        # min() on the exponent keeps 2**n a float that cannot overflow on a long run.
        wait = min(self.max_backoff_s, self.first_backoff_s * 2.0 ** min(attempt - 1, 60))
        if isinstance(failure, httpx.Response):
            asked = retry_after_s(failure.headers, now)
            if asked is not None:
                wait = max(wait, asked)
        return wait if wait <= left_s else None


DEFAULT_RETRY = RetryPolicy()


def retry_after_s(headers: httpx.Headers, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds from now: delay-seconds, or an HTTP-date measured from the
    response's own ``Date`` (so clock skew does not count), else from ``now``. ``None`` when
    absent or unreadable, and the backoff alone decides."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(headers.get("date", "")) or now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # HTTP-dates are GMT; a "-0000" zone parses as naive.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class InferenceClient:
    """Talks v2 to one HTTP endpoint (``http://host:port``), with an optional bearer token.

    ``retry``: when ``infer`` and ``metadata`` send a request again (both are idempotent);
    ``None`` sends each once. Giving up raises what the last attempt ended with: the
    ``RequestError`` of its answer, or its httpx transport error."""

    def __init__(
        self,
        endpoint: str,
        token: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = DEFAULT_RETRY,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.endpoint = endpoint.rstrip("/")
        self.retry = retry
        self._http = httpx.Client(base_url=self.endpoint, headers=headers, timeout=timeout_s)

    def model_path(self, name: str, version: int | str | None = None) -> str:
        return f"/v2/models/{name}" + ("" if version is None else f"/versions/{version}")

    def metadata(self, name: str, version: int | str | None = None) -> dict[str, Any]:
        return dict(self._send("GET", self.model_path(name, version)).json())

    def infer(
        self,
        name: str,
        inputs: Inputs,
        input_name: str | None = None,
        version: int | str | None = None,
    ) -> dict[str, np.ndarray]:
        """Outputs for one array (of a single-input model, named by ``input_name``) or for
        ``{input_name: array or encoded images}`` covering every input."""
        body = infer_body(inputs, input_name)
        response = self._send("POST", self.model_path(name, version) + "/infer", body)
        return parse_outputs(response.json())

    def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """A successful answer, after as many attempts as ``self.retry`` allows."""
        started = time.monotonic()
        attempt = 1
        while True:  # ends: next_wait gives up once a wait would pass the deadline
            failure: Failure
            try:
                response = self._http.request(method, path, json=body)
            except httpx.TransportError as error:
                failure = error
            else:
                if response.is_success:
                    return response
                failure = response
            elapsed_s = time.monotonic() - started
            wait = (
                None
                if self.retry is None
                else self.retry.next_wait(attempt, failure, self.retry.deadline_s - elapsed_s)
            )
            if wait is None:
                if isinstance(failure, httpx.Response):
                    raise_for_status(failure)
                    raise AssertionError("raise_for_status passed a failed answer")
                raise failure
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        self._http.close()
