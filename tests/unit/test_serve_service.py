"""The model service without Ray: runner parity, routing, auth, promotion rules, HTTP path."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from ray.serve.schema import ApplicationStatus
from starlette.requests import Request
from starlette.responses import Response
from torch import nn

from factories import make_runner
from tandem.errors import RegistryError, Rejected
from tandem.models import ModelRunner, build_model
from tandem.preprocess import encode_png
from tandem.registry import InputSchema, TargetSchema, tabular_input
from tandem.sdk.inference import infer_body, input_tensor
from tandem.serve import app as app_module
from tandem.serve import protocol
from tandem.serve import shadow as shadow_module
from tandem.serve.app import Gateway
from tandem.serve.auth import BearerAuth, load_token
from tandem.serve.batching import run_grouped
from tandem.serve.binary import encode_byte_elements
from tandem.serve.evidence import ShadowResult
from tandem.serve.plain import plain_app
from tandem.serve.promotion import lower_is_better
from tandem.serve.routing import CanaryTarget, LiveVersions, ShadowTarget
from tandem.serve.service import ModelService, Predict, parse_route
from tandem.serve.statuses import status_of
from tandem.specs.deployment import AuthSpec

FEATURES = 4


def toy(version: int = 1, seed: int = 0, metrics: dict[str, float] | None = None) -> ModelRunner:
    features = [f"f{i}" for i in range(FEATURES)]
    schema = tabular_input(
        features, [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 0.5, 1.0], [1.0, 2.0, 3.0, 4.0]
    )
    return make_runner(
        version,
        seed,
        name="toy",
        factory="tandem.models:mlp",
        inputs=[schema],
        target=TargetSchema(classes=[3, 5, 7]),
        metrics=metrics or {},
    )


class AnyInputs(nn.Module):
    """One encoder per input (a mean of embeddings for a sequence, a linear layer for the
    rest), summed, then a linear head: a user's model of several inputs."""

    def __init__(self, inputs: dict[str, dict[str, Any]], out_features: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(
            nn.EmbeddingBag(info["vocab_size"], 8, mode="mean", padding_idx=0)
            if info["kind"] == "sequence"
            else nn.Sequential(nn.Flatten(), nn.Linear(math.prod(info["shape"]), 8))
            for info in inputs.values()
        )
        self.head = nn.Linear(8, out_features)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        encoded = [encoder(x) for encoder, x in zip(self.encoders, inputs, strict=True)]
        return self.head(torch.relu(torch.stack(encoded).sum(0)))


def any_inputs(inputs: dict[str, dict[str, Any]], out_features: int) -> nn.Module:
    return AnyInputs(inputs, out_features)


VOCAB = 20
PNG = encode_png(np.arange(64, dtype=np.uint8).reshape(1, 8, 8) * 4)
MULTI_INPUTS = [
    InputSchema(
        name="stats",
        kind="tabular",
        columns=["a", "b"],
        shape=[2],
        dtype="float32",
        features=["a", "b"],
        example=[0.5, 1.5],
    ),
    InputSchema(
        name="pixels",
        kind="tensor",
        columns=["pixels"],
        shape=[2, 2, 2],
        dtype="float32",
        normalize="fitted",
        mean=[100.0, 50.0],
        std=[60.0, 20.0],
        example=[7.0] * 8,
    ),
    InputSchema(
        name="photo",
        kind="image",
        columns=["photo"],
        shape=[1, 8, 8],
        dtype="float32",
        example=base64.b64encode(PNG).decode(),
    ),
    InputSchema(
        name="tokens",
        kind="sequence",
        columns=["tokens"],
        shape=[6],
        dtype="int64",
        vocab_size=VOCAB,
        example=[1, 2, 3],
    ),
]


def multi(version: int = 1, seed: int = 0) -> ModelRunner:
    """A classifier of four inputs, one of each kind."""
    return make_runner(
        version,
        seed,
        name="multi",
        factory=f"{__name__}:any_inputs",
        kwargs={},
        inputs=MULTI_INPUTS,
        target=TargetSchema(classes=[3, 5, 7]),
    )


def multi_raws(rows: int, seed: int = 0) -> list[Any]:
    """Raw values of ``rows`` rows for ``multi()``: stats, pixels, photo, tokens."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(rows, 2, 2, 2), dtype=np.uint8)
    photos = [encode_png(rng.integers(0, 256, (1, 8, 8), dtype=np.uint8)) for _ in range(rows)]
    tokens = rng.integers(0, VOCAB, size=(rows, 4))
    return [rng.normal(size=(rows, 2)).astype(np.float32), pixels, photos, tokens]


def test_runner_applies_preprocessing_and_class_mapping() -> None:
    runner = toy()
    rows = np.random.default_rng(0).normal(size=(5, FEATURES)).astype(np.float32)
    outputs = runner.predict([rows])
    torch.manual_seed(0)  # the same initial weights as toy()
    model = build_model("tandem.models:mlp", {"hidden": [8]}, runner.manifest.inputs, 3).eval()
    normalised = (torch.from_numpy(rows) - torch.tensor([1.0, 2, 3, 4])) / torch.tensor(
        [2.0, 2, 0.5, 1]
    )
    expected = torch.softmax(model(normalised), dim=1).detach().numpy()
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=1e-5)
    np.testing.assert_array_equal(outputs["label"], np.array([3, 5, 7])[expected.argmax(1)])


def test_runner_refuses_weights_that_do_not_fit() -> None:
    runner = toy()
    inputs = runner.manifest.inputs
    wrong = build_model("tandem.models:mlp", {"hidden": [9]}, inputs, 3).state_dict()
    with pytest.raises(RuntimeError, match="size mismatch"):
        ModelRunner(runner.manifest, wrong)


def test_health_check_fails_on_broken_weights() -> None:
    runner = toy()
    broken = {k: torch.full_like(v, float("nan")) for k, v in runner._model.state_dict().items()}
    with pytest.raises(RuntimeError, match="not finite"):
        ModelRunner(runner.manifest, broken)


def test_grouped_batch_runs_each_version_and_keeps_request_order() -> None:
    runners = {1: toy(1, seed=0), 2: toy(2, seed=1)}
    rows = np.random.default_rng(1).normal(size=(6, FEATURES)).astype(np.float32)
    parts = [(runners[1], rows[:2]), (runners[2], rows[2:3]), (runners[1], rows[3:6])]
    results = run_grouped([(runner, runner.prepare([part])) for runner, part in parts])
    assert [len(r["label"]) for r in results] == [2, 1, 3]
    for (runner, part), result in zip(parts, results, strict=True):
        alone = runner.predict([part])
        np.testing.assert_allclose(result["probabilities"], alone["probabilities"], rtol=1e-5)


def test_grouped_batch_joins_a_multi_input_model_input_by_input() -> None:
    runner = multi()
    raws = [multi_raws(2, seed=1), multi_raws(1, seed=2), multi_raws(3, seed=3)]
    results = run_grouped([(runner, runner.prepare(r)) for r in raws])
    assert [len(r["label"]) for r in results] == [2, 1, 3]
    for raw, result in zip(raws, results, strict=True):
        alone = runner.predict(raw)
        np.testing.assert_allclose(result["probabilities"], alone["probabilities"], rtol=1e-5)
        np.testing.assert_array_equal(result["label"], alone["label"])


def test_routing_pins_aliases_and_canary_share() -> None:
    live = LiveVersions(
        default=1, canary=CanaryTarget(version=2, weight=25), pinned=(3,), aliases={"prod": 1}
    )
    assert live.pick("3", 0.0) == 3 and live.pick("prod", 0.0) == 1
    draws = np.linspace(0, 1, 1000, endpoint=False)
    share = sum(live.pick(None, d) == 2 for d in draws) / len(draws)
    assert share == pytest.approx(0.25)
    with pytest.raises(Rejected) as caught:
        live.pick("9", 0.0)
    assert status_of(caught.value) == 404 and "live versions: [1, 2, 3]" in caught.value.message
    with pytest.raises(Rejected):
        live.pick("staging", 0.0)


def test_no_canary_and_zero_weight_send_everything_to_default() -> None:
    assert LiveVersions(default=4).pick(None, 0.0) == 4
    zero = LiveVersions(default=4, canary=CanaryTarget(version=5, weight=0))
    assert zero.pick(None, 0.0) == 4


def test_routes() -> None:
    assert parse_route("POST", "/infer").action.value == "infer"
    assert parse_route("GET", "/versions/prod/ready").version == "prod"
    assert parse_route("GET", "").action.value == "metadata"
    for method, path in [("GET", "/infer"), ("POST", "/nope"), ("GET", "/versions/1/x")]:
        with pytest.raises(Rejected) as caught:
            parse_route(method, path)
        assert status_of(caught.value) == 404


def test_bearer_auth(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    auth = BearerAuth(load_token(AuthSpec(token_file=str(token_file))))
    auth.check("Bearer s3cret")
    for header in [None, "Bearer wrong", "Basic s3cret", "s3cret"]:
        with pytest.raises(Rejected) as caught:
            auth.check(header)
        assert status_of(caught.value) == 401 and "s3cret" not in caught.value.message
    BearerAuth(None).check(None)


def test_empty_token_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_TEST_TOKEN", "  ")
    with pytest.raises(ValueError, match="TANDEM_TEST_TOKEN"):
        load_token(AuthSpec(token_env="TANDEM_TEST_TOKEN"))


def test_if_better_direction() -> None:
    assert lower_is_better("val_rmse") and lower_is_better("loss")
    assert not lower_is_better("val_accuracy")
    with pytest.raises(RegistryError, match="lower or higher"):
        lower_is_better("val_banana")


def test_http_path_end_to_end_in_a_plain_app() -> None:
    asyncio.run(_http_path())


async def _http_path() -> None:
    runner = toy()
    app = plain_app(runner, max_rows=8, max_body_bytes=2048)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await _exercise(client, runner)


async def _exercise(client: httpx.AsyncClient, runner: ModelRunner) -> None:
    rows = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]
    body = {
        "id": "a",
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": rows}],
    }
    answer = await client.post("/v2/models/toy/infer", json=body)
    assert answer.status_code == 200, answer.text
    labels = {o["name"]: o["data"] for o in answer.json()["outputs"]}["label"]
    assert labels == runner.predict([np.asarray(rows, dtype=np.float32)])["label"].tolist()
    meta = (await client.get("/v2/models/toy")).json()
    assert meta["inputs"][0]["shape"] == [-1, 4] and meta["versions"] == ["1"]
    assert (await client.get("/v2/models/toy/versions/1/ready")).status_code == 200
    missing = await client.get("/v2/models/toy/versions/7/ready")
    assert missing.status_code == 404 and "live versions" in missing.json()["error"]
    huge = await client.post("/v2/models/toy/infer", content=b"x" * 4096)
    assert huge.status_code == 413 and "2048 bytes" in huge.json()["error"]
    bad = await client.post("/v2/models/toy/infer", content=b"{")
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    assert json.loads(protocol.error_body("x")) == {"error": "x"}
    server = await client.get("/v2")
    assert server.status_code == 200 and server.json()["extensions"] == ["binary_tensor_data"]


def test_gateway_answers_server_metadata_behind_its_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_TEST_TOKEN", "s3cret")
    gateway = Gateway.func_or_class({"auth": {"token_env": "TANDEM_TEST_TOKEN"}})

    async def get(path: str, headers: dict[str, str]) -> Response:
        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": b"",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }
        response: Response = await gateway(Request(scope))
        return response

    assert asyncio.run(get("/v2", {})).status_code == 401
    answer = asyncio.run(get("/v2/", {"authorization": "Bearer s3cret"}))
    assert answer.status_code == 200
    assert json.loads(bytes(answer.body)) == protocol.server_metadata()


def test_gateway_answers_readiness_and_unknown_models(monkeypatch: pytest.MonkeyPatch) -> None:
    apps = {"toy": ApplicationStatus.RUNNING, "other": ApplicationStatus.DEPLOYING}
    monkeypatch.setattr(app_module, "model_app_statuses", lambda: dict(apps))
    gateway = Gateway.func_or_class({})

    async def get(path: str) -> Response:
        scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": []}
        response: Response = await gateway(Request(scope))
        return response

    live = asyncio.run(get("/v2/health/live"))
    assert live.status_code == 200 and json.loads(bytes(live.body)) == {"live": True}
    not_ready = asyncio.run(get("/v2/health/ready"))
    assert not_ready.status_code == 503 and json.loads(bytes(not_ready.body)) == {"ready": False}
    apps["other"] = ApplicationStatus.RUNNING
    assert asyncio.run(get("/v2/health/ready")).status_code == 200
    missing = asyncio.run(get("/v2/models/nope/infer"))
    assert missing.status_code == 404
    assert json.loads(bytes(missing.body)) == {
        "error": "no model serves /v2/models/nope/infer; deployed models: ['other', 'toy'] "
        "(use /v2/models/{name}/...)"
    }


MULTI = multi()
MULTI_URL = "/v2/models/multi/infer"
Raws = dict[str, Any]


def raws_by_name(rows: int = 2, seed: int = 0) -> Raws:
    return dict(zip(["stats", "pixels", "photo", "tokens"], multi_raws(rows, seed), strict=True))


def json_request(raws: Raws) -> tuple[bytes, dict[str, str]]:
    return json.dumps(infer_body(raws)).encode(), {"content-type": "application/json"}


def binary_request(raws: Raws, sizes: dict[str, int] | None = None) -> tuple[bytes, dict[str, str]]:
    """Every input as binary data (as tritonclient sends it), every output asked as binary."""
    tensors, chunks = [], []
    for name, value in raws.items():
        tensor = input_tensor(name, value)
        del tensor["data"]
        if tensor["datatype"] == "BYTES":
            chunk = encode_byte_elements(value)
        else:
            chunk = np.ascontiguousarray(value).tobytes()
        tensor["parameters"] = {"binary_data_size": (sizes or {}).get(name, len(chunk))}
        tensors.append(tensor)
        chunks.append(chunk)
    header = json.dumps({"inputs": tensors, "parameters": {"binary_data_output": True}}).encode()
    headers = {"inference-header-content-length": str(len(header))}
    return header + b"".join(chunks), headers


def labels_of(answer: httpx.Response) -> list[int]:
    """Labels from a JSON or a binary response."""
    assert answer.status_code == 200, answer.text
    length = answer.headers.get("inference-header-content-length")
    if length is None:
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        return list(outputs["label"]["data"])
    head = json.loads(answer.content[: int(length)])
    offset = int(length)
    for output in head["outputs"]:
        size = output["parameters"]["binary_data_size"]
        if output["name"] == "label":
            return np.frombuffer(answer.content[offset : offset + size], "<i8").tolist()
        offset += size
    raise AssertionError("no label in the response")


def post_multi(request: tuple[bytes, dict[str, str]]) -> httpx.Response:
    async def post() -> httpx.Response:
        app = plain_app(MULTI, max_rows=8, max_body_bytes=1 << 16)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post(MULTI_URL, content=request[0], headers=request[1])

    return asyncio.run(post())


def expected_labels(raws: Raws) -> list[int]:
    return MULTI.predict([raws[s.name] for s in MULTI.manifest.inputs])["label"].tolist()


@pytest.mark.parametrize("encode", [json_request, binary_request])
def test_a_multi_input_model_answers_json_and_binary_requests(encode: Any) -> None:
    raws = raws_by_name(rows=3, seed=4)
    # The request lists its inputs in another order than the model's.
    reordered = {name: raws[name] for name in ["tokens", "photo", "stats", "pixels"]}
    answer = post_multi(encode(reordered))
    assert labels_of(answer) == expected_labels(raws)
    binary = encode is binary_request
    assert (answer.headers["content-type"] == "application/octet-stream") is binary


def with_change(name: str, value: Any) -> Raws:
    return raws_by_name() | {name: value}


def good_tokens(**index: int) -> np.ndarray:
    tokens = raws_by_name()["tokens"].copy()
    tokens[index["row"], 0] = index["value"]
    return tokens


BAD_REQUESTS = {
    "undecodable image": (
        json_request(with_change("photo", [PNG, b"not an image"])),
        "input 'photo': row 1: not a readable image",
    ),
    "token id past the vocabulary": (
        json_request(with_change("tokens", good_tokens(row=1, value=VOCAB))),
        "input 'tokens': row 1: token id 20 is outside the vocabulary (ids 0..19",
    ),
    "negative token id": (
        binary_request(with_change("tokens", good_tokens(row=0, value=-1))),
        "input 'tokens': row 0: token ids must be ≥ 0",
    ),
    "wrong dtype": (
        json_request(with_change("tokens", np.ones((2, 4), dtype=np.float32))),
        "input 'tokens': unsupported datatype 'FP32' for a sequence input; send INT64 or INT32",
    ),
    "wrong shape": (
        json_request(with_change("pixels", np.zeros((2, 2, 2, 3), dtype=np.uint8))),
        "input 'pixels': expected rows of shape [2, 2, 2], shape says [2, 2, 2, 3]",
    ),
    "rows that do not agree": (
        json_request(with_change("tokens", np.ones((3, 4), dtype=np.int64))),
        "input 'tokens': has 3 rows but input 'stats' has 2; every input needs the same N",
    ),
    "sequence past max_length": (
        json_request(with_change("tokens", np.ones((2, 7), dtype=np.int64))),
        "input 'tokens': sequences must hold 1 to 6 token ids (max_length); shape says 7",
    ),
    "binary size mismatch": (
        binary_request(raws_by_name(), sizes={"stats": 15}),
        "input 'stats': binary_data_size is 15 bytes, but FP32 of shape [2, 2] takes 16",
    ),
    "header length past the body": (
        (binary_request(raws_by_name())[0], {"inference-header-content-length": "99999"}),
        "Inference-Header-Content-Length says the JSON header is 99999 bytes",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_tensor_gets_400_naming_it_and_the_next_request_succeeds(case: str) -> None:
    request, message = BAD_REQUESTS[case]
    answer = post_multi(request)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(message), answer.json()["error"]
    raws = raws_by_name(seed=5)
    assert labels_of(post_multi(binary_request(raws))) == expected_labels(raws)


@pytest.mark.parametrize("ref", ["²", "9" * 5000, "-1", "1.0"])
def test_version_refs_that_are_not_ascii_numbers_get_404_not_500(ref: str) -> None:
    live = LiveVersions(default=1, aliases={"production": 1})
    with pytest.raises(Rejected) as raised:
        live.resolve(ref)
    assert status_of(raised.value) == 404 and len(raised.value.message) < 300


def test_a_shadow_is_loaded_but_never_answers() -> None:
    live = LiveVersions(
        default=1,
        canary=CanaryTarget(version=2, weight=50),
        shadow=ShadowTarget(version=3, share=100),
        aliases={"prod": 1},
    )
    assert live.loaded() == {1, 2, 3} and live.served() == {1, 2}
    draws = np.linspace(0, 1, 1000, endpoint=False)
    assert {live.pick(None, d) for d in draws} == {1, 2}
    with pytest.raises(Rejected) as caught:
        live.pick("3", 0.0)
    assert status_of(caught.value) == 404 and "live versions: [1, 2]" in caught.value.message
    # Only requests the default answers without naming a version are mirrored.
    assert live.mirrors(None, 1, 0.99) == live.shadow
    assert live.mirrors(None, 2, 0.0) is None and live.mirrors("1", 1, 0.0) is None
    quarter = LiveVersions(default=1, shadow=ShadowTarget(version=3, share=25))
    assert sum(quarter.mirrors(None, 1, d) is not None for d in draws) == 250
    with pytest.raises(ValueError, match="is the default version"):
        LiveVersions(default=1, shadow=ShadowTarget(version=1, share=10))


ROWS = np.random.default_rng(7).normal(size=(3, FEATURES)).astype(np.float32)
INFER_BODY = json.dumps(infer_body({"input": ROWS})).encode()


async def forward(runner: ModelRunner, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    return runner.forward(arrays)


async def infer(service: ModelService, predict: Predict = forward) -> tuple[int, bytes, int]:
    """One JSON infer request through ``service.handle``, as Serve hands it over: the
    status, the body and the version the outcome names."""
    messages = [{"type": "http.request", "body": INFER_BODY, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/models/toy/infer",
        "root_path": "/v2/models/toy",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    response, outcome = await service.handle(Request(scope, receive), predict)
    assert outcome.status == response.status_code and outcome.inference
    assert outcome.version is not None
    return response.status_code, bytes(response.body), outcome.version


def shadowed(share: int, shadow: ModelRunner, results: list[ShadowResult]) -> ModelService:
    service = ModelService(
        "toy", BearerAuth(None), 64, 1 << 16, results.append, draw=random.Random(3).random
    )
    live = LiveVersions(default=1, shadow=ShadowTarget(version=shadow.version, share=share))
    service.swap(live, {1: LIVE, shadow.version: shadow})
    return service


LIVE = toy(1, seed=0)


def test_a_shadow_never_changes_the_answer_and_compares_every_mirrored_request() -> None:
    plain = ModelService("toy", BearerAuth(None), 64, 1 << 16)
    plain.swap(LiveVersions(default=1), {1: LIVE})
    results: list[ShadowResult] = []
    service = shadowed(100, toy(2, seed=1), results)

    async def run() -> tuple[list[tuple[int, bytes, int]], list[tuple[int, bytes, int]]]:
        alone = [await infer(plain) for _ in range(5)]
        mirrored = [await infer(service) for _ in range(5)]
        await service.shadows.settled()
        return alone, mirrored

    alone, mirrored = asyncio.run(run())
    assert alone == mirrored and all(status == 200 for status, _, _ in alone)
    live_labels = LIVE.predict([ROWS])["label"]
    shadow_labels = toy(2, seed=1).predict([ROWS])["label"]
    agreeing = int((live_labels == shadow_labels).sum())
    assert len(results) == 5
    for result in results:
        assert (result.version, result.shadow_version, result.rows) == (1, 2, 3)
        assert result.agreeing_rows == agreeing and result.latency_ms is not None
        assert result.outcome == ("agree" if agreeing == 3 else "disagree")


def test_the_shadow_re_runs_about_its_share_of_requests() -> None:
    results: list[ShadowResult] = []
    service = shadowed(25, toy(2, seed=1), results)

    async def run() -> None:
        for _ in range(400):
            assert (await infer(service))[0] == 200
        await service.shadows.settled()

    asyncio.run(run())
    assert 0.19 < len(results) / 400 < 0.31
    assert all(r.outcome in ("agree", "disagree") for r in results)


def test_a_failing_shadow_is_counted_and_never_fails_a_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results: list[ShadowResult] = []
    broken = toy(2, seed=1)

    def boom(arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        raise RuntimeError("the shadow's weights are broken")

    monkeypatch.setattr(broken, "forward", boom)
    service = shadowed(100, broken, results)

    async def run() -> list[int]:
        statuses = [(await infer(service))[0] for _ in range(4)]
        await service.shadows.settled()
        return statuses

    assert asyncio.run(run()) == [200] * 4
    assert [r.outcome for r in results] == ["error"] * 4


def test_live_requests_never_wait_for_the_shadow(monkeypatch: pytest.MonkeyPatch) -> None:
    results: list[ShadowResult] = []
    slow, entered, release = toy(2, seed=1), threading.Event(), threading.Event()
    real_forward = slow.forward

    def stuck(arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        entered.set()
        assert release.wait(timeout=30), "the test never released the shadow"
        return real_forward(arrays)

    monkeypatch.setattr(slow, "forward", stuck)
    monkeypatch.setattr(shadow_module, "SHADOW_QUEUE_LIMIT", 3)
    service = shadowed(100, slow, results)

    async def run() -> list[int]:
        # The shadow's first pass blocks its thread; every live request still answers.
        statuses = [(await infer(service))[0]]
        assert await asyncio.to_thread(entered.wait, 30)
        statuses += [(await infer(service))[0] for _ in range(7)]
        assert [r.outcome for r in results] == ["dropped"] * 4
        release.set()
        await service.shadows.settled()
        return statuses

    assert asyncio.run(run()) == [200] * 8
    outcomes = [r.outcome for r in results]
    # One pass running, three queued behind it, the other four dropped (not queued).
    assert outcomes.count("dropped") == 4 and len(outcomes) == 8


def test_a_failing_version_fails_only_its_own_requests_of_a_batch() -> None:
    good, bad = toy(1, seed=0), toy(2, seed=1)
    bad.forward = lambda arrays: 1 / 0  # type: ignore[method-assign, assignment, return-value]
    results = run_grouped([(good, good.prepare([ROWS])), (bad, bad.prepare([ROWS]))])
    assert isinstance(results[1], ZeroDivisionError)
    np.testing.assert_array_equal(results[0]["label"], good.predict([ROWS])["label"])  # type: ignore[index]

    service = ModelService("toy", BearerAuth(None), 64, 1 << 16)
    service.swap(LiveVersions(default=2), {2: bad})

    async def failing(runner: ModelRunner, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        result = run_grouped([(runner, arrays)])[0]
        assert isinstance(result, Exception)
        raise result

    status, body, version = asyncio.run(infer(service, failing))
    assert status == 500 and version == 2
    assert "version 2 of toy failed" in json.loads(body)["error"]


def test_mirrored_requests_past_the_memory_bound_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shadow_module, "SHADOW_QUEUE_BYTES", ROWS.nbytes)  # < one request
    results: list[ShadowResult] = []
    service = shadowed(100, toy(2, seed=1), results)

    async def run() -> list[int]:
        statuses = [(await infer(service))[0] for _ in range(3)]
        await service.shadows.settled()
        return statuses

    assert asyncio.run(run()) == [200] * 3
    assert [r.outcome for r in results] == ["dropped"] * 3
