"""Fuzzed requests through the real request path (auth → route → read → parse → prepare →
model → respond), as JSON and as binary tensor data.

Every answer is below 500: 200 with the model's labels for a valid request, 4xx with a
JSON ``{"error": "..."}`` otherwise, and the service still answers a good request
correctly right after. No Ray: ``ModelService.handle`` is called with a Starlette request.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from factories import make_runner
from tandem.models import ModelRunner, Outputs
from tandem.serve.auth import BearerAuth
from tandem.serve.routing import LiveVersions
from tandem.serve.service import ModelService

MODEL = "iris-mlp"
TOKEN = "s3cret"
MAX_ROWS = 64
MAX_BODY = 256 * 1024  # room for 100k nested lists, small enough to send more in a test
PREFIX = f"/v2/models/{MODEL}"
GOOD_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]

FUZZ = settings(deadline=None, database=None)

RUNNER = make_runner()
GOOD_LABELS = RUNNER.predict([np.asarray(GOOD_ROWS, dtype=np.float32)])["label"].tolist()


def make_service(runner: ModelRunner) -> ModelService:
    service = ModelService(MODEL, BearerAuth(TOKEN.encode()), MAX_ROWS, MAX_BODY)
    service.swap(LiveVersions(default=runner.version), {runner.version: runner})
    return service


SERVICE = make_service(RUNNER)


async def predict(runner: ModelRunner, arrays: list[np.ndarray]) -> Outputs:
    return runner.forward(arrays)


class Reply(NamedTuple):
    status: int
    body: bytes
    json_length: int | None
    """Length of the JSON header of a binary response (``None`` for a JSON one)."""

    def head(self) -> dict[str, Any]:
        return dict(json.loads(self.body[: self.json_length]))


async def send(body: bytes, headers: dict[str, str] | None = None, chunks: int = 1) -> Reply:
    """One request to ``SERVICE``, its body in ``chunks`` pieces as a server streams it."""
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"} | (
        headers or {}
    )
    size = max(1, math.ceil(len(body) / chunks))
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": PREFIX + "/infer",
        "root_path": PREFIX,  # as Serve and the plain app hand it over
        "query_string": b"",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
    }
    response, outcome = await SERVICE.handle(Request(scope, receive), predict)
    assert outcome.status == response.status_code
    length = response.headers.get("inference-header-content-length")
    json_length = None if length is None else int(length)
    return Reply(response.status_code, bytes(response.body), json_length)


def infer_body(rows: Any, **tensor: Any) -> bytes:
    shape = [len(rows), len(rows[0])] if isinstance(rows[0], list) else [len(rows) // 4, 4]
    base = {"name": "input", "shape": shape, "datatype": "FP32", "data": rows}
    return json.dumps({"inputs": [base | tensor]}).encode()


GOOD_BODY = infer_body(GOOD_ROWS, datatype="FP64")


def labels(body: bytes) -> list[int]:
    outputs = {o["name"]: o for o in json.loads(body)["outputs"]}
    return list(outputs["label"]["data"])


def check_answer(reply: Reply) -> None:
    """Below 500; a 4xx says why in ``{"error": "..."}``."""
    assert reply.status < 500, reply.body[:300]
    if reply.status >= 400:
        error = reply.head()["error"]
        assert isinstance(error, str) and error and len(error) < 1000, error[:300]
    else:
        assert reply.status == 200 and reply.head()["model_name"] == MODEL


async def check_then_good(
    body: bytes, headers: dict[str, str] | None = None, chunks: int = 1
) -> Reply:
    reply = await send(body, headers, chunks)
    check_answer(reply)
    good = await send(GOOD_BODY)
    assert good.status == 200 and labels(good.body) == GOOD_LABELS
    return reply


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
dims = st.integers(min_value=-3, max_value=70) | st.sampled_from(
    [10**12, 2**31, 2**63, 2**64, -(2**63), 10**30]
)
shapes = st.lists(dims, max_size=3) | st.sampled_from([[10**12, 64], [10**12, 4], [0, 4]])
TENSOR_FIELDS = ["name", "shape", "datatype", "data", "parameters"]
REQUEST_FIELDS = ["inputs", "id", "outputs", "parameters"]


@st.composite
def broken_requests(draw: st.DrawFn) -> bytes:
    """A valid request with one to three fields retyped, removed or made huge."""
    request: dict[str, Any] = json.loads(GOOD_BODY)
    tensor = request["inputs"][0]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        target, field = draw(
            st.sampled_from(
                [(tensor, f) for f in TENSOR_FIELDS] + [(request, f) for f in REQUEST_FIELDS]
            )
        )
        edit = draw(st.sampled_from(["value", "delete", "shape", "small data", "outputs"]))
        if edit == "delete":
            target.pop(field, None)
        elif edit == "shape":
            tensor["shape"] = draw(shapes)
        elif edit == "small data":
            tensor["data"] = draw(st.lists(json_values | st.floats(), max_size=8))
        elif edit == "outputs":
            request["outputs"] = [{"name": draw(json_values | st.sampled_from(["label"]))}]
        else:
            target[field] = draw(json_values)
    return json.dumps(request).encode()  # NaN and Infinity as JavaScript literals


def deep(depth: int, opener: str) -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    inner = '"a": ' if opener == "{" else ""
    return ((opener + inner) * depth + "1" + closer * depth).encode()


raw_bodies = (
    st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | st.builds(deep, st.integers(min_value=1, max_value=100_000), st.sampled_from(["[", "{"]))
    | st.builds(
        lambda depth: GOOD_BODY.replace(b'"data": ', b'"data": ' + b"[" * depth),
        st.integers(1, 3000),
    )
    | st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b"{}",
            b'{"inputs": NaN}',
            b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", '
            b'"data": [NaN, Infinity, -Infinity, 1]}]}',
            b'{"id": ' + b"9" * 5000 + b"}",
            b'{"inputs": "\xff\xfe"}',
            b"\xef\xbb\xbf{}",
            b" " * (MAX_BODY + 1),
            GOOD_BODY + b"x" * MAX_BODY,
        ]
    )
)
header_sets = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(["text/plain", "", "application/x-www-form-urlencoded"])
        | st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=20),
        "content-length": st.sampled_from(["0", "5", str(MAX_BODY + 1), "²", "9" * 5000, "-1"]),
        "authorization": st.sampled_from(["", "Bearer", "Bearer wrong", "Basic s3cret", TOKEN]),
        "inference-header-content-length": st.sampled_from(["0", "1", "²", "-1", "9" * 30])
        | st.integers(0, 400).map(str),
    },
)


@settings(FUZZ, max_examples=400)
@given(body=broken_requests() | raw_bodies, headers=header_sets, chunks=st.integers(1, 4))
def test_any_request_gets_below_500_and_leaves_the_service_working(
    body: bytes, headers: dict[str, str], chunks: int
) -> None:
    asyncio.run(check_then_good(body, headers, chunks))


# Mostly near the training data; sometimes anywhere in FP32, where the model can overflow.
finite_values = st.floats(min_value=-1e4, max_value=1e4) | st.floats(
    min_value=-3e38, max_value=3e38
)


@settings(FUZZ, max_examples=100)
@given(
    rows=st.integers(1, MAX_ROWS).flatmap(
        lambda n: st.lists(st.lists(finite_values, min_size=4, max_size=4), min_size=n, max_size=n)
    ),
    nested=st.booleans(),
    datatype=st.sampled_from(["FP32", "FP64"]),
    request_id=st.none() | st.text(max_size=20),
    wanted=st.sampled_from([None, ["label"], ["probabilities"], ["label", "probabilities"]]),
)
def test_valid_requests_get_the_models_labels(
    rows: list[list[float]],
    nested: bool,
    datatype: str,
    request_id: str | None,
    wanted: list[str] | None,
) -> None:
    data = rows if nested else [value for row in rows for value in row]
    request = json.loads(infer_body(rows, datatype=datatype, data=data))
    if request_id is not None:
        request["id"] = request_id
    if wanted is not None:
        request["outputs"] = [{"name": name} for name in wanted]
    status, answer, _ = asyncio.run(check_then_good(json.dumps(request).encode()))
    expected = RUNNER.predict([np.asarray(rows, dtype=np.float32)])
    if not np.isfinite(expected["probabilities"]).all():
        assert status == 422
        return
    assert status == 200
    response = json.loads(answer)
    assert response.get("id") == request_id
    outputs = {o["name"]: o for o in response["outputs"]}
    assert sorted(outputs) == sorted(wanted or ["label", "probabilities"])
    if "label" in outputs:
        assert outputs["label"]["data"] == expected["label"].tolist()
    if "probabilities" in outputs:
        assert outputs["probabilities"]["shape"] == [len(rows), 3]


def binary_body(rows: list[list[float]], datatype: str = "FP32") -> tuple[bytes, int]:
    """GOOD_ROWS-like rows as binary data after the JSON header, outputs asked as binary."""
    data = np.asarray(rows, dtype={"FP32": "<f4", "FP64": "<f8"}[datatype]).tobytes()
    tensor = {"name": "input", "shape": [len(rows), 4], "datatype": datatype}
    tensor["parameters"] = {"binary_data_size": len(data)}
    header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}})
    return header.encode() + data, len(header)


@st.composite
def broken_binary_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A valid binary request with its framing broken: the header length, the declared
    size, the datatype, the body cut short or extended."""
    body, length = binary_body(GOOD_ROWS, draw(st.sampled_from(["FP32", "FP64"])))
    header = json.loads(body[:length])
    tensor = header["inputs"][0]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        edit = draw(st.sampled_from(["length", "size", "datatype", "cut", "extend", "params"]))
        if edit == "length":
            length = draw(st.integers(0, len(body) + 10))
        elif edit == "size":
            size = draw(json_values | st.integers(-5, 80))
            tensor["parameters"] = {"binary_data_size": size}
        elif edit == "datatype":
            tensor["datatype"] = draw(st.sampled_from(["BYTES", "INT64", "UINT8", "FP16"]))
        elif edit == "cut":
            body = body[: draw(st.integers(0, len(body)))]
        elif edit == "extend":
            body += draw(st.binary(min_size=1, max_size=20))
        else:
            tensor["parameters"] = draw(json_values)
    head = json.dumps(header).encode()
    data = body[len(head) :] if len(body) > len(head) else b""
    return head + data, {"inference-header-content-length": str(length)}


@settings(FUZZ, max_examples=200)
@given(request=broken_binary_requests())
def test_any_binary_request_gets_below_500_and_leaves_the_service_working(
    request: tuple[bytes, dict[str, str]],
) -> None:
    asyncio.run(check_then_good(*request))


@settings(FUZZ, max_examples=50)
@given(
    rows=st.integers(1, MAX_ROWS).flatmap(
        lambda n: st.lists(
            st.lists(st.floats(-1e4, 1e4, width=32), min_size=4, max_size=4), min_size=n, max_size=n
        )
    ),
)
def test_valid_binary_requests_get_the_models_labels_as_binary(rows: list[list[float]]) -> None:
    body, length = binary_body(rows)
    headers = {"inference-header-content-length": str(length)}
    reply = asyncio.run(check_then_good(body, headers))
    assert reply.status == 200 and reply.json_length is not None
    expected = RUNNER.predict([np.asarray(rows, dtype=np.float32)])
    sizes = [o["parameters"]["binary_data_size"] for o in reply.head()["outputs"]]
    assert sizes == [len(rows) * 12, len(rows) * 8]  # probabilities FP32 [N, 3], label INT64
    data = reply.body[reply.json_length :]
    assert np.frombuffer(data[sizes[0] :], "<i8").tolist() == expected["label"].tolist()


# Regression tests: each of these inputs made the request path raise (a 500 in a replica).


def answer(body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    reply = asyncio.run(check_then_good(body, headers))
    return reply.status, reply.head().get("error", "")


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_json_gets_400(depth: int) -> None:
    status, error = answer(deep(depth, "["))
    assert status == 400 and "nests JSON arrays or objects too deeply" in error


def test_an_integer_of_5000_digits_gets_400() -> None:
    body = GOOD_BODY.replace(b"5.1", b"9" * 5000)
    assert answer(body) == (
        400,
        "request body holds an integer too long to read (over 4300 digits)",
    )


def test_finite_inputs_that_overflow_the_model_get_422() -> None:
    status, error = answer(infer_body([[3e38, -3e38, 3e38, -3e38]]))
    assert status == 422 and "outputs are NaN or Inf" in error


@pytest.mark.parametrize("field", ["name", "shape", "datatype"])
def test_huge_or_deep_values_are_not_echoed_whole(field: str) -> None:
    for value in ["x" * 100_000, json.loads(deep(200, "["))]:
        status, error = answer(infer_body(GOOD_ROWS, **{field: value}))
        assert status == 400 and len(error) < 200, error[:300]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"id": json.loads(deep(200, "["))}, '"id" must be a string'),
        ({"id": {"a": 1}}, '"id" must be a string'),
        ({"outputs": [{"name": json.loads(deep(200, "["))}]}, '"outputs" must be a list'),
        ({"outputs": [{"name": 5}]}, '"outputs" must be a list'),
    ],
)
def test_ids_and_output_names_that_are_not_strings_get_400(
    change: dict[str, Any], fragment: str
) -> None:
    status, error = answer(json.dumps(json.loads(GOOD_BODY) | change).encode())
    assert status == 400 and fragment in error


@pytest.mark.parametrize("declared", ["²", "9" * 5000])
def test_a_content_length_int_cannot_read_is_ignored(declared: str) -> None:
    assert answer(GOOD_BODY, {"content-length": declared}) == (200, "")
