"""The inference client rides through a replica change: the retry policy alone, then the
client against real HTTP servers on 127.0.0.1 that fail a few times before answering."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

import loopback
from loopback import listening_socket
from tandem.errors import RequestError
from tandem.sdk.inference import InferenceClient, RetryPolicy

POLICY = RetryPolicy(deadline_s=10.0, first_backoff_s=0.05, max_backoff_s=1.0)
FAST = RetryPolicy(deadline_s=2.0, first_backoff_s=0.01, max_backoff_s=0.05)
# What tandem.serve.protocol.infer_response sends for one row of a classifier.
ANSWER = {
    "model_name": "m",
    "model_version": "1",
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [1], "data": [7]},
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]},
    ],
}
ROWS = np.zeros((1, 4), np.float32)


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


# --- the policy, without I/O --------------------------------------------------------


def test_backoff_doubles_up_to_its_cap() -> None:
    waits = [POLICY.next_wait(n, answer(502), left_s=60) for n in range(1, 8)]
    assert waits == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert POLICY.next_wait(10_000, answer(504), left_s=60) == 1.0


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no answer to SYN"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
        httpx.WriteError("broken pipe"),
    ],
)
def test_a_connection_that_failed_or_closed_is_retried(error: httpx.TransportError) -> None:
    assert POLICY.next_wait(1, error, left_s=10) == pytest.approx(0.05)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout("slow model"),
        httpx.PoolTimeout("pool"),
        httpx.LocalProtocolError("bad request line"),
        httpx.UnsupportedProtocol("ftp://"),
    ],
)
def test_a_slow_server_or_a_client_mistake_is_not_retried(error: httpx.TransportError) -> None:
    assert POLICY.next_wait(1, error, left_s=10) is None


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413, 422, 429, 500, 501, 505])
def test_other_statuses_are_the_model_s_answer(status: int) -> None:
    assert POLICY.next_wait(1, answer(status, **{"retry-after": "0"}), left_s=10) is None


def test_retry_after_seconds_is_the_least_wait() -> None:
    assert POLICY.next_wait(1, answer(503, **{"retry-after": "3"}), left_s=10) == 3.0
    assert POLICY.next_wait(3, answer(503, **{"retry-after": "0"}), left_s=10) == 0.2
    # No Retry-After: a 503 may be a proxy with no replica up, so backoff alone.
    assert POLICY.next_wait(1, answer(503), left_s=10) == 0.05


def test_retry_after_never_reaches_past_the_deadline() -> None:
    assert POLICY.next_wait(1, answer(503, **{"retry-after": "3"}), left_s=2.5) is None
    assert POLICY.next_wait(1, answer(503, **{"retry-after": "3"}), left_s=3.0) == 3.0


def test_retry_after_as_an_http_date() -> None:
    dated = answer(
        503,
        **{"retry-after": "Wed, 21 Oct 2015 07:28:02 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )
    # Measured from the server's own Date, whatever this machine's clock says.
    assert POLICY.next_wait(1, dated, left_s=10, now=datetime(2030, 1, 1, tzinfo=UTC)) == 2.0
    undated = answer(503, **{"retry-after": "Wed, 21 Oct 2015 07:28:04 GMT"})
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert POLICY.next_wait(1, undated, left_s=10, now=now) == 4.0
    assert POLICY.next_wait(1, undated, left_s=3, now=now) is None
    # A date already past asks for no wait beyond the backoff.
    assert POLICY.next_wait(1, undated, left_s=10, now=datetime(2016, 1, 1, tzinfo=UTC)) == 0.05


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", ""])
def test_an_unreadable_retry_after_leaves_the_backoff(value: str) -> None:
    assert POLICY.next_wait(2, answer(503, **{"retry-after": value}), left_s=10) == 0.1


def test_it_gives_up_when_the_wait_would_pass_the_deadline() -> None:
    assert POLICY.next_wait(1, answer(502), left_s=0.04) is None
    assert POLICY.next_wait(1, answer(502), left_s=0.0) is None
    assert POLICY.next_wait(1, answer(502), left_s=-1.0) is None
    never = RetryPolicy(deadline_s=0)
    assert never.next_wait(1, httpx.ConnectError("refused"), left_s=never.deadline_s) is None


def test_a_policy_is_checked_when_built() -> None:
    with pytest.raises(ValueError, match="max_backoff_s must be ≥ first_backoff_s"):
        RetryPolicy(first_backoff_s=2.0, max_backoff_s=1.0)
    with pytest.raises(ValueError, match="deadline_s"):
        RetryPolicy(deadline_s=-1)
    with pytest.raises(ValueError, match="first_backoff_s"):
        RetryPolicy(first_backoff_s=0)


# --- the client against real HTTP ---------------------------------------------------


class Script:
    """Answers each request with the next scripted status (and Retry-After), then 200."""

    def __init__(self, *failures: tuple[int, str | None]) -> None:
        self.failures = list(failures)
        self.requests: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await request.body()
        self.requests.append(f"{request.method} {request.url.path}")
        response: Response
        if self.failures:
            status, retry_after = self.failures.pop(0)
            headers = {} if retry_after is None else {"Retry-After": retry_after}
            response = JSONResponse({"error": f"scripted {status}"}, status, headers)
        elif request.method == "GET":
            response = JSONResponse({"name": "m", "inputs": [{"name": "input"}]})
        else:
            response = JSONResponse(ANSWER)
        await response(scope, receive, send)


@contextmanager
def serving(app: Script) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 (a port the OS picks) until the block ends."""
    with loopback.serving(app, timeout_s=10) as address:
        yield f"http://{address}"


class DroppingFirst:
    """A raw HTTP server that reads each of the first ``drops`` requests and closes its
    connection without a word (a replica that died mid-request), then answers ``ANSWER``.
    ``log`` holds what it did, one entry per connection."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.log: list[str] = []
        self.sock = listening_socket()
        self.sock.listen()
        self.sock.settimeout(5)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DroppingFirst:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # shutdown wakes an accept() still waiting in the thread; close alone does not.
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)

    def _serve(self) -> None:
        for _ in range(self.drops + 1):  # bounded: one connection per attempt
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by the test, or nobody came within the timeout
                return
            with conn:
                conn.settimeout(5)
                self.log.append(read_request(conn).split(b"\r\n", 1)[0].decode())
                if len(self.log) <= self.drops:
                    continue
                body = json.dumps(ANSWER).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                    + body
                )


def read_request(conn: socket.socket) -> bytes:
    """One whole request (head and ``content-length`` body) from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "client closed mid-request"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    while len(body) < sum(lengths):
        chunk = conn.recv(65536)
        assert chunk, "client closed mid-body"
        body += chunk
    return head + b"\r\n\r\n" + body


def assert_answered(outputs: dict[str, np.ndarray]) -> None:
    assert outputs["label"].tolist() == [7]
    assert outputs["probabilities"].dtype == np.float32 and outputs["probabilities"].shape == (1, 2)


def test_503_with_retry_after_twice_then_the_answer() -> None:
    app = Script((503, "0"), (503, "0"))
    with serving(app) as url:
        client = InferenceClient(url, retry=FAST)
        assert_answered(client.infer("m", ROWS, "input"))
        client.close()
    assert app.requests == ["POST /v2/models/m/infer"] * 3


def test_502_then_the_answer_and_metadata_too() -> None:
    app = Script((502, None), (504, None))
    with serving(app) as url:
        client = InferenceClient(url, retry=FAST)
        assert client.metadata("m")["name"] == "m"
        assert app.requests == ["GET /v2/models/m"] * 3
        app.failures = [(502, None)]
        assert_answered(client.infer("m", ROWS, "input", version=1))
        client.close()
    assert app.requests[3:] == ["POST /v2/models/m/versions/1/infer"] * 2


def test_a_connection_closed_without_an_answer_is_sent_again() -> None:
    with DroppingFirst(drops=1) as server:
        client = InferenceClient(server.url, retry=FAST)
        assert_answered(client.infer("m", ROWS, "input"))
        client.close()
    assert server.log == ["POST /v2/models/m/infer HTTP/1.1"] * 2


def test_without_retry_the_dropped_connection_is_the_caller_s() -> None:
    with DroppingFirst(drops=1) as server:
        client = InferenceClient(server.url, retry=None)
        with pytest.raises(httpx.RemoteProtocolError):
            client.infer("m", ROWS, "input")
        client.close()
    assert len(server.log) == 1


def test_a_400_is_sent_once() -> None:
    app = Script((400, "0"))
    with serving(app) as url:
        client = InferenceClient(url, retry=FAST)
        with pytest.raises(RequestError) as error:
            client.infer("m", ROWS, "input")
        client.close()
    assert error.value.status == 400 and "scripted 400" in error.value.message
    assert len(app.requests) == 1


def test_a_persistent_503_gives_up_at_the_deadline() -> None:
    policy = RetryPolicy(deadline_s=0.5, first_backoff_s=0.01, max_backoff_s=0.05)
    app = Script(*[(503, "0")] * 1000)
    with serving(app) as url:
        client = InferenceClient(url, retry=policy)
        started = time.monotonic()
        with pytest.raises(RequestError) as error:
            client.infer("m", ROWS, "input")
        elapsed = time.monotonic() - started
        client.close()
    assert error.value.status == 503 and "scripted 503" in error.value.message
    # It stops at the first wait that would end past the deadline, and not before.
    assert policy.deadline_s - policy.max_backoff_s <= elapsed < policy.deadline_s + 1.0
    assert 5 <= len(app.requests) < 1000


def test_a_refused_connection_gives_up_with_the_connect_error() -> None:
    policy = RetryPolicy(deadline_s=0.3, first_backoff_s=0.01, max_backoff_s=0.05)
    sock = listening_socket()  # bound, never listening: connections are refused
    try:
        client = InferenceClient(f"http://127.0.0.1:{sock.getsockname()[1]}", retry=policy)
        started = time.monotonic()
        with pytest.raises(httpx.ConnectError):
            client.metadata("m")
        assert policy.deadline_s - policy.max_backoff_s <= time.monotonic() - started
        client.close()
    finally:
        sock.close()
