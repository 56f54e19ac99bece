"""Serving on a real embedded cluster, over real HTTP: parity, bad input, rollout under
load, autoscaling, auth and overload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from serving import (
    Digits,
    LoadLoop,
    infer_body,
    labels_of,
    register_digits,
    running_replicas,
    wait_for,
)
from tandem.cluster.local import ClusterState
from tandem.errors import RegistryError
from tandem.evaluation import evaluate, load_all
from tandem.registry.store import Registry
from tandem.serve import control
from tandem.settings import Settings

pytestmark = pytest.mark.train_pool_idle  # test_train's jobs train meanwhile

MODEL = "digits"


@pytest.fixture(scope="module")
def digits(cluster: Settings) -> Digits:
    return register_digits(cluster, (MODEL, "digits-secure", "digits-tight", "digits-scale"))


@pytest.fixture(scope="module")
def base_url(cluster: Settings) -> str:
    state = ClusterState.read(cluster)
    assert state is not None
    return f"http://127.0.0.1:{state.serve_http_port}"


@pytest.fixture(scope="module")
def served(cluster: Settings, digits: Digits, base_url: str) -> Iterator[str]:
    control.deploy(
        {
            "model": MODEL,
            "batching": {"max_batch_size": 16, "max_wait_ms": 2},
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        },
        cluster,
    )
    yield f"{base_url}/v2/models/{MODEL}"
    control.undeploy(MODEL, cluster)


def test_served_labels_match_offline_model(served: str, digits: Digits) -> None:
    with httpx.Client(timeout=30) as client:
        whole = labels_of(client.post(f"{served}/infer", json=infer_body(digits.x_val)))
        one_by_one = [
            labels_of(client.post(f"{served}/infer", json=infer_body(digits.x_val[i : i + 1])))[0]
            for i in range(0, 40)
        ]
    assert whole == digits.offline[1].tolist()
    assert one_by_one == digits.offline[1][:40].tolist()
    assert (np.asarray(whole) == digits.y_val).mean() >= 0.95


def test_metadata_health_and_unknown_paths(served: str, base_url: str) -> None:
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{base_url}/v2/health/live").status_code == 200
        assert client.get(f"{base_url}/v2/health/ready").status_code == 200
        meta = client.get(served).json()
        assert meta["name"] == MODEL and meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
        assert client.get(f"{served}/ready").status_code == 200
        assert client.get(f"{served}/versions/production/ready").status_code == 200
        for url in (f"{base_url}/v2/models/nope/infer", f"{served}/versions/9/ready"):
            answer = client.get(url)
            assert answer.status_code == 404 and answer.json()["error"], url


def test_bad_inputs_get_4xx_and_the_replica_keeps_serving(served: str, digits: Digits) -> None:
    good = infer_body(digits.x_val[:2])
    row = digits.x_val[0].tolist()
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}
    bad: list[tuple[bytes | dict[str, object], int]] = [
        (b"not json", 400),
        ({"id": "x"}, 400),
        ({"inputs": [{**tensor, "name": "pixels"}]}, 400),
        ({"inputs": [{**tensor, "shape": [2, 64]}]}, 400),
        ({"inputs": [{**tensor, "shape": [1, 63], "data": row[:63]}]}, 400),
        ({"inputs": [{**tensor, "datatype": "BYTES"}]}, 400),
        ({"inputs": [{**tensor, "data": [*row[:63], float("inf")]}]}, 400),
        ({"inputs": [{**tensor, "shape": [0, 64], "data": []}]}, 400),
        (infer_body(np.zeros((5000, 64), dtype=np.float32)), 400),
        (b"{" + b" " * (9 * 1024 * 1024) + b"}", 413),
    ]
    with httpx.Client(timeout=60) as client:
        for body, status in bad:
            # json.dumps writes the Infinity literal that httpx's json= refuses to send.
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            answer = client.post(f"{served}/infer", content=content)
            assert answer.status_code == status, (str(body)[:80], answer.text)
            assert answer.json()["error"]
            assert labels_of(client.post(f"{served}/infer", json=good))


def test_promote_canary_rollback_under_load_fail_nothing(
    cluster: Settings, served: str, digits: Digits
) -> None:
    spec = {
        "model": MODEL,
        "batching": {"max_batch_size": 16, "max_wait_ms": 2},
        "autoscaling": {"min_replicas": 1, "max_replicas": 1},
    }
    with LoadLoop(f"{served}/infer", infer_body(digits.x_val[:4]), threads=3) as load:
        wait_for(lambda: load.total() >= 50, 30, "load to start")
        assert control.promote(MODEL, 2, cluster, if_better=None) == 1
        seen = load.versions["2"]
        wait_for(lambda: load.versions["2"] > seen + 50, 30, "v2 to answer")
        control.deploy({**spec, "canary": {"version": 1, "weight": 50}}, cluster)
        seen = load.versions["1"]
        wait_for(lambda: load.versions["1"] > seen + 30, 30, "the canary to answer")
        control.deploy(spec, cluster)
        assert control.rollback(MODEL, cluster) == (2, 1)
        count = load.total()
        wait_for(lambda: load.total() > count + 100, 30, "load after rollback")
    assert load.errors == [] and set(load.statuses) == {200}, (load.statuses, load.errors[:3])
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{served}/infer", json=infer_body(digits.x_val))
    assert answer.json()["model_version"] == "1"
    assert labels_of(answer) == digits.offline[1].tolist()


def test_promote_if_better_refuses_a_worse_candidate(
    cluster: Settings, digits: Digits, tmp_path: Path
) -> None:
    registry = Registry.default(cluster)
    holdout = tmp_path / "holdout.parquet"
    width = digits.x_val.shape[1]
    frame = pd.DataFrame(digits.x_val, columns=[f"pixel_{i}" for i in range(width)])
    frame.assign(digit=digits.y_val).to_parquet(holdout)
    # Both versions scored on the same rows, in the batch pool, exactly as offline.
    scored = evaluate(cluster, MODEL, 2, against=1, data=str(holdout), label="digit")
    assert scored.rows == len(digits.y_val) and scored.versions() == [1, 2]
    accuracies = {v: scored.score(v)["accuracy"] for v in (1, 2)}
    for version, accuracy in accuracies.items():
        assert accuracy == pytest.approx((digits.offline[version] == digits.y_val).mean())
    worse, better = sorted(accuracies, key=accuracies.__getitem__)
    registry.set_alias(MODEL, "staging", better)
    stored = len(load_all(registry, MODEL))
    # Worse or tied, the candidate is refused on the stored evaluation (no second run).
    with pytest.raises(RegistryError, match="refusing to promote"):
        control.promote(MODEL, worse, cluster, alias="staging", if_better="val_accuracy")
    assert registry.aliases(MODEL)["staging"] == better
    assert len(load_all(registry, MODEL)) == stored


def test_auth(
    cluster: Settings, base_url: str, digits: Digits, tmp_path_factory: pytest.TempPathFactory
) -> None:
    token_file: Path = tmp_path_factory.mktemp("auth") / "token"
    token_file.write_text("t0ken-for-tests\n")
    control.deploy(
        {
            "model": "digits-secure",
            "auth": {"token_file": str(token_file)},
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        },
        cluster,
    )
    url = f"{base_url}/v2/models/digits-secure"
    body = infer_body(digits.x_val[:1])
    try:
        with httpx.Client(timeout=30) as client:
            assert client.get(f"{base_url}/v2/health/live").status_code == 200
            assert client.post(f"{url}/infer", json=body).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert client.post(f"{url}/infer", json=body, headers=wrong).status_code == 401
            assert client.get(url, headers=wrong).status_code == 401
            right = {"Authorization": "Bearer t0ken-for-tests"}
            answer = client.post(f"{url}/infer", json=body, headers=right)
            assert labels_of(answer) == digits.offline[1][:1].tolist()
            assert "t0ken" not in client.post(f"{url}/infer", json=body, headers=wrong).text
    finally:
        control.undeploy("digits-secure", cluster)


def test_overload_answers_503_with_retry_after(
    cluster: Settings, base_url: str, digits: Digits
) -> None:
    control.deploy(
        {
            "model": "digits-tight",
            "max_ongoing_requests": 1,
            "max_queued_requests": 1,
            "batching": {"max_batch_size": 1, "max_wait_ms": 0},
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        },
        cluster,
    )
    url = f"{base_url}/v2/models/digits-tight/infer"
    try:
        with LoadLoop(
            url, infer_body(digits.x_val), threads=12, max_requests=2400, max_seconds=60
        ) as load:
            wait_for(lambda: load.statuses[503] >= 5, 60, "503 answers")
        assert load.errors == [] and set(load.statuses) <= {200, 503}, load.statuses
        assert load.retry_after and all(value.isdigit() for value in load.retry_after)
        with httpx.Client(timeout=30) as client:
            assert labels_of(client.post(url, json=infer_body(digits.x_val[:1])))
    finally:
        control.undeploy("digits-tight", cluster)


def test_autoscaling_grows_under_load_and_shrinks_after(
    cluster: Settings, base_url: str, digits: Digits
) -> None:
    name = "digits-scale"
    control.deploy(
        {
            "model": name,
            "max_ongoing_requests": 4,
            "batching": {"max_batch_size": 4},
            "autoscaling": {
                "min_replicas": 1,
                "max_replicas": 2,
                "target_ongoing_requests": 1,
                "upscale_delay_s": 1,
                "downscale_delay_s": 3,
            },
        },
        cluster,
    )
    url = f"{base_url}/v2/models/{name}/infer"
    peak = 0
    try:
        with LoadLoop(url, infer_body(digits.x_val), threads=8, max_seconds=90) as load:

            def grown() -> bool:
                nonlocal peak
                peak = max(peak, running_replicas(name))
                return peak == 2

            wait_for(grown, 80, "a second replica under load")
        assert load.errors == [] and set(load.statuses) == {200}, load.statuses
        wait_for(lambda: running_replicas(name) == 1, 60, "scale-down after the load")
        assert peak <= 2
    finally:
        control.undeploy(name, cluster)
