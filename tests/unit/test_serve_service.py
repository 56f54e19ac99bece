"""The model service without Ray: runner parity, routing, auth, promotion rules, HTTP path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from tandem.errors import RegistryError, RequestError
from tandem.models import build_model
from tandem.registry.manifest import Manifest
from tandem.serve import protocol
from tandem.serve.auth import BearerAuth, load_token
from tandem.serve.plain import plain_app
from tandem.serve.promotion import check_better, lower_is_better
from tandem.serve.routing import CanaryTarget, LiveVersions
from tandem.models import ModelRunner
from tandem.serve.service import parse_route, run_grouped
from tandem.specs.deployment import AuthSpec

FEATURES = 4


def toy(version: int = 1, seed: int = 0, metrics: dict[str, float] | None = None) -> ModelRunner:
    torch.manual_seed(seed)
    model = build_model("tandem.models:mlp", {"hidden": [8]}, FEATURES, 3)
    manifest = Manifest.model_validate(
        {
            "name": "toy",
            "version": version,
            "created_at": "2026-01-01T00:00:00+00:00",
            "task": "classification",
            "factory": "tandem.models:mlp",
            "kwargs": {"hidden": [8]},
            "out_features": 3,
            "input": {"features": [f"f{i}" for i in range(FEATURES)]},
            "preprocessing": {"mean": [1.0, 2.0, 3.0, 4.0], "std": [2.0, 2.0, 0.5, 1.0]},
            "classes": [3, 5, 7],
            "metrics": metrics or {},
            "example": [1.0, 2.0, 3.0, 4.0],
            "weights": {"sha256": "0" * 64, "bytes": 0},
            "lineage": {
                "run_name": "r",
                "run_id": "r",
                "spec_sha256": "s",
                "datasets": [],
                "code_version": "c",
                "ray_version": "r",
                "torch_version": "t",
                "python_version": "p",
                "checkpoint": "c",
            },
        }
    )
    return ModelRunner(manifest, model.state_dict())


def test_runner_applies_preprocessing_and_class_mapping() -> None:
    runner = toy()
    rows = np.random.default_rng(0).normal(size=(5, FEATURES)).astype(np.float32)
    outputs = runner.predict(rows)
    torch.manual_seed(0)  # the same initial weights as toy()
    model = build_model("tandem.models:mlp", {"hidden": [8]}, FEATURES, 3).eval()
    normalised = (torch.from_numpy(rows) - torch.tensor([1.0, 2, 3, 4])) / torch.tensor(
        [2.0, 2, 0.5, 1]
    )
    expected = torch.softmax(model(normalised), dim=1).detach().numpy()
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=1e-5)
    np.testing.assert_array_equal(outputs["label"], np.array([3, 5, 7])[expected.argmax(1)])


def test_runner_refuses_weights_that_do_not_fit() -> None:
    runner = toy()
    wrong = build_model("tandem.models:mlp", {"hidden": [9]}, FEATURES, 3).state_dict()
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
    requests = [(runners[1], rows[:2]), (runners[2], rows[2:3]), (runners[1], rows[3:6])]
    results = run_grouped(requests)
    assert [len(r["label"]) for r in results] == [2, 1, 3]
    for (runner, part), result in zip(requests, results, strict=True):
        alone = runner.predict(part)
        np.testing.assert_allclose(result["probabilities"], alone["probabilities"], rtol=1e-5)


def test_routing_pins_aliases_and_canary_share() -> None:
    live = LiveVersions(
        default=1, canary=CanaryTarget(version=2, weight=25), pinned=(3,), aliases={"prod": 1}
    )
    assert live.pick("3", 0.0) == 3 and live.pick("prod", 0.0) == 1
    draws = np.linspace(0, 1, 1000, endpoint=False)
    share = sum(live.pick(None, d) == 2 for d in draws) / len(draws)
    assert share == pytest.approx(0.25)
    with pytest.raises(RequestError) as caught:
        live.pick("9", 0.0)
    assert caught.value.status == 404 and "live versions: [1, 2, 3]" in caught.value.message
    with pytest.raises(RequestError):
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
        with pytest.raises(RequestError) as caught:
            parse_route(method, path)
        assert caught.value.status == 404


def test_bearer_auth(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    auth = BearerAuth(load_token(AuthSpec(token_file=str(token_file))))
    auth.check("Bearer s3cret")
    for header in [None, "Bearer wrong", "Basic s3cret", "s3cret"]:
        with pytest.raises(RequestError) as caught:
            auth.check(header)
        assert caught.value.status == 401 and "s3cret" not in caught.value.message
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
    good, bad = toy(2, metrics={"val_accuracy": 0.97}), toy(1, metrics={"val_accuracy": 0.95})
    check_better("val_accuracy", good.manifest, bad.manifest)
    with pytest.raises(RegistryError, match="worse than v2"):
        check_better("val_accuracy", bad.manifest, good.manifest)


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
    assert labels == runner.predict(np.asarray(rows, dtype=np.float32))["label"].tolist()
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


@pytest.mark.parametrize("ref", ["²", "9" * 5000, "-1", "1.0"])
def test_version_refs_that_are_not_ascii_numbers_get_404_not_500(ref: str) -> None:
    live = LiveVersions(default=1, aliases={"production": 1})
    with pytest.raises(RequestError) as raised:
        live.resolve(ref)
    assert raised.value.status == 404 and len(raised.value.message) < 300
