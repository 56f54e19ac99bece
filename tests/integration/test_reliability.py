"""What Tandem survives on the multi-node embedded cluster (a head and one Ray node per
pool, each its own ``ray start`` process): a Serve replica killed under load, a pool
node lost and brought back, and an audit of where every pool's work ran.

The figures each scenario prints (run with ``-s``) are the ones in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ray.util import state as ray_state

from serving import Digits, LoadLoop, infer_body, labels_of, register_digits, wait_for
from tandem.cluster import local, session
from tandem.errors import IntegrityError
from tandem.registry.store import Registry
from tandem.serve import control
from tandem.settings import Settings
from tandem.specs.cluster import POOL_LABEL, pool_resource

pytestmark = pytest.mark.train_pool_idle  # test_train's jobs train meanwhile

CHAOS = "digits-chaos"
NODE_LOSS = "digits-node-loss"
FUZZ = "digits-fuzz"
POOLS = ("train", "serve", "batch")
# Actor classes that are a pool's work; everything they run must stay on that pool.
POOL_ACTORS = {"train": ("RayTrainWorker",), "serve": ("ServeReplica:",), "batch": ("Scoring",)}
# Ray Data tasks that ask for no pool resource (Parquet sampling is SPREAD-scheduled): the
# pipelines' label selector must still keep them off the serve nodes.
RAY_DATA_TASKS = ("_fetch_parquet_file_info", "ReadParquet")


@pytest.fixture(scope="module")
def digits(cluster: Settings) -> Digits:
    return register_digits(cluster, (CHAOS, NODE_LOSS, FUZZ))


@pytest.fixture(scope="module")
def state(cluster: Settings) -> local.ClusterState:
    found = local.ClusterState.read(cluster)
    assert found is not None
    return found


def node_pools(gcs_address: str) -> dict[str, str]:
    """Pool of every node the cluster ever had, dead ones included (the head is ``head``)."""
    nodes = ray_state.list_nodes(address=gcs_address, limit=1000, raise_on_missing_output=False)
    return {n.node_id: n.labels.get(POOL_LABEL, "head") for n in nodes}


def replicas(gcs_address: str, app: str) -> list[ray_state.ActorState]:
    actors = ray_state.list_actors(
        address=gcs_address,
        filters=[("state", "=", "ALIVE")],
        limit=10_000,
        raise_on_missing_output=False,
    )
    return [a for a in actors if a.class_name.startswith(f"ServeReplica:{app}:")]


def answers(url: str, body: dict[str, object]) -> bool:
    try:
        return httpx.post(url, json=body, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def two_replicas(cluster: Settings, digits: Digits, state: local.ClusterState) -> Iterator[str]:
    control.deploy(
        {
            "model": CHAOS,
            "batching": {"max_batch_size": 8, "max_wait_ms": 2},
            "cpus_per_replica": 1,
            "autoscaling": {"min_replicas": 2, "max_replicas": 2},
        },
        cluster,
    )
    yield f"http://127.0.0.1:{state.serve_http_port}/v2/models/{CHAOS}/infer"
    control.undeploy(CHAOS, cluster)


def test_a_replica_killed_under_load_fails_no_request(
    two_replicas: str, digits: Digits, state: local.ClusterState
) -> None:
    body = infer_body(digits.x_val[:4])
    before = replicas(state.gcs_address, CHAOS)
    assert len(before) == 2
    victim = before[0]
    with LoadLoop(two_replicas, body, threads=4, max_seconds=120) as load:
        wait_for(lambda: load.total() >= 200, 30, "load to start")
        sent_before_kill = load.total()
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def replaced() -> bool:
            alive = replicas(state.gcs_address, CHAOS)
            return len(alive) == 2 and victim.actor_id not in {a.actor_id for a in alive}

        wait_for(replaced, 90, "Serve to replace the killed replica")
        recovery_s = time.monotonic() - killed_at
        count = load.total()
        wait_for(lambda: load.total() > count + 100, 30, "load after the replacement")
    failed = load.total() - load.statuses[200] + len(load.errors)
    print(
        f"\nreplica kill: {load.total()} requests ({sent_before_kill} before the kill), "
        f"{failed} failed, replacement replica running after {recovery_s:.1f}s"
    )
    # HAProxy replays a request whose replica died under it (retry-on
    # empty-response), so a failure reaches a client rarely; at most the requests
    # in flight on the killed replica may fail: one per load thread.
    assert failed <= load.threads, (load.statuses, load.errors[:3])


def test_a_lost_pool_node_keeps_its_work_and_gets_it_back(
    cluster: Settings, digits: Digits, state: local.ClusterState
) -> None:
    control.deploy(
        {"model": NODE_LOSS, "autoscaling": {"min_replicas": 1, "max_replicas": 1}}, cluster
    )
    url = f"http://127.0.0.1:{state.serve_http_port}/v2/models/{NODE_LOSS}/infer"
    body = infer_body(digits.x_val[:2])
    try:
        assert answers(url, body)
        os.killpg(state.process_groups["serve"], signal.SIGKILL)
        lost_at = time.monotonic()
        wait_for(lambda: not answers(url, body), 60, "the endpoint to notice the lost node")
        # Serve tries to replace the replica for a while; it must find no other node.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pools = node_pools(state.gcs_address)
            misplaced = [
                a for a in replicas(state.gcs_address, NODE_LOSS) if pools[a.node_id] != "serve"
            ]
            assert misplaced == [], [(a.class_name, pools[a.node_id]) for a in misplaced]
            time.sleep(1)
        assert not answers(url, body)
        outage_s = time.monotonic() - lost_at
        session.up(cluster)  # starts only the dead node again
        healed_at = time.monotonic()
        wait_for(lambda: answers(url, body), 180, "the endpoint back on the restarted node")
        print(
            f"\nserve node lost: no replica placed on another pool's node during "
            f"{outage_s:.0f}s; answering {time.monotonic() - healed_at:.1f}s after `tandem up`"
        )
        with httpx.Client(timeout=30) as client:
            answer = client.post(url, json=infer_body(digits.x_val))
        assert labels_of(answer) == digits.offline[1].tolist()
    finally:
        control.undeploy(NODE_LOSS, cluster)


@pytest.fixture(scope="module")
def fuzz_base(cluster: Settings, digits: Digits, state: local.ClusterState) -> Iterator[str]:
    control.deploy({"model": FUZZ, "autoscaling": {"min_replicas": 1, "max_replicas": 1}}, cluster)
    yield f"http://127.0.0.1:{state.serve_http_port}"
    control.undeploy(FUZZ, cluster)


def replica_rss_bytes(gcs_address: str, app: str) -> int:
    (replica,) = replicas(gcs_address, app)
    status = Path(f"/proc/{replica.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
TENSOR = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["input", "pixels", ""]) | JSON,
        "shape": st.lists(st.integers(-(2**40), 2**40), max_size=4) | JSON,
        "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL"]) | JSON,
        "data": st.lists(st.floats(), max_size=130) | JSON,
        "parameters": JSON,
    },
)
BODIES = (
    JSON.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {}, optional={"id": JSON, "inputs": st.lists(TENSOR, max_size=3) | JSON}
    ).map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=300)
    | st.sampled_from([b"[" * 100_000, b'{"inputs": ' * 50_000, b"", b"NaN", b"\xff\xfe"])
)
INFER_PATHS = [f"/v2/models/{FUZZ}/infer", f"/v2/models/{FUZZ}/versions/1/infer"]
KNOWN_PATHS = st.sampled_from(
    [
        *INFER_PATHS * 8,  # most cases exercise the request parser
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{FUZZ}",
        f"/v2/models/{FUZZ}/ready",
        f"/v2/models/{FUZZ}/versions/production",
        f"/v2/models/{FUZZ}/versions/../../infer",
        "/v2/models/nope/infer",
    ]
)
RANDOM_PATHS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/._%-", max_size=40).map(
    lambda p: f"/v2/models/{FUZZ}/" + p
)
PATHS = st.one_of(KNOWN_PATHS, KNOWN_PATHS, KNOWN_PATHS, RANDOM_PATHS)
FUZZ_CASES = 200


def test_fuzzed_requests_get_no_5xx_and_the_service_stays_ready(
    fuzz_base: str, digits: Digits, state: local.ClusterState
) -> None:
    good = infer_body(digits.x_val[:2])
    infer = f"{fuzz_base}/v2/models/{FUZZ}/infer"
    rss_before = replica_rss_bytes(state.gcs_address, FUZZ)
    statuses: Counter[int] = Counter()

    with httpx.Client(base_url=fuzz_base, timeout=30) as client:

        @settings(max_examples=FUZZ_CASES, deadline=None, derandomize=True)
        @given(
            method=st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE"]), path=PATHS, body=BODIES
        )
        def one_case(method: str, path: str, body: bytes) -> None:
            answer = client.request(method, path, content=body)
            statuses[answer.status_code] += 1
            assert answer.status_code < 500, (method, path, body[:80], answer.text[:200])

        one_case()
        assert labels_of(client.post(infer, json=good)) == digits.offline[1][:2].tolist()
        assert client.get("/v2/health/ready").status_code == 200
    growth = replica_rss_bytes(state.gcs_address, FUZZ) - rss_before
    print(
        f"\nfuzz: {sum(statuses.values())} requests, statuses {dict(statuses)}, "
        f"replica RSS +{growth >> 20} MiB"
    )
    assert growth < 200 * 2**20


def test_slow_bodies_do_not_stall_other_clients(
    fuzz_base: str, digits: Digits, state: local.ClusterState
) -> None:
    host, port = "127.0.0.1", state.serve_http_port
    head = (
        f"POST /v2/models/{FUZZ}/infer HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    ).encode()
    slow = [socket.create_connection((host, port), timeout=10) for _ in range(50)]
    try:
        for connection in slow:
            connection.sendall(head)
        started = time.monotonic()
        with httpx.Client(timeout=10) as client:
            for _ in range(20):
                for connection in slow:
                    connection.sendall(b" ")  # a trickle, never the whole body
                answer = client.post(
                    f"{fuzz_base}/v2/models/{FUZZ}/infer", json=infer_body(digits.x_val[:1])
                )
                assert labels_of(answer) == digits.offline[1][:1].tolist()
        elapsed = time.monotonic() - started
        print(f"\nslow bodies: 20 good requests beside 50 stalled uploads in {elapsed:.2f}s")
    finally:
        for connection in slow:
            connection.close()


def test_a_corrupt_version_is_refused_and_the_deployment_keeps_serving_its_own(
    cluster: Settings, fuzz_base: str, digits: Digits
) -> None:
    registry = Registry.default(cluster)
    manifest, weights = registry.load_weights(FUZZ, 1)
    corrupt = registry.register(manifest.model_copy(update={"version": 0}), weights).version
    path = Path(cluster.storage_uri) / (
        f"registry/{FUZZ}/versions/{corrupt}/{manifest.weights.file}"
    )
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        control.promote(FUZZ, corrupt, cluster)
    with pytest.raises(IntegrityError, match="sha256"):
        control.deploy({"model": FUZZ, "version": corrupt}, cluster)
    assert registry.aliases(FUZZ)["production"] == 1
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{fuzz_base}/v2/models/{FUZZ}/infer", json=infer_body(digits.x_val))
    assert answer.json()["model_version"] == "1"
    assert labels_of(answer) == digits.offline[1].tolist()


@pytest.mark.after_all
def test_every_pools_work_ran_on_its_pools_nodes(cluster: Settings) -> None:
    """Audits what the whole session left in Ray's state API: every train worker,
    Serve replica and batch scoring actor, and every task that asked for a pool's
    resource (Ray Data's ingest tasks among them), ran on a node of that pool; Ray
    Data's Parquet sampling tasks, which ask for none, never ran on a serve node."""
    gcs = local.ClusterState.read(cluster)
    assert gcs is not None
    pools = node_pools(gcs.gcs_address)
    actors = ray_state.list_actors(
        address=gcs.gcs_address, detail=True, limit=10_000, raise_on_missing_output=False
    )
    tasks = ray_state.list_tasks(
        address=gcs.gcs_address, detail=True, limit=10_000, raise_on_missing_output=False
    )
    placed: dict[str, int] = dict.fromkeys(POOLS, 0)
    data_tasks = 0
    for actor in actors:
        for pool, prefixes in POOL_ACTORS.items():
            if actor.class_name.startswith(prefixes) and actor.node_id:
                assert pools[actor.node_id] == pool, (actor.class_name, pools[actor.node_id])
                placed[pool] += 1
    for task in tasks:
        asked = [p for p in POOLS if pool_resource(p) in (task.required_resources or {})]
        if asked and task.node_id:
            assert pools[task.node_id] == asked[0], (task.name, pools[task.node_id])
            placed[asked[0]] += 1
        if task.name.startswith(RAY_DATA_TASKS) and task.node_id:
            assert pools[task.node_id] != "serve", (task.name, pools[task.node_id])
            data_tasks += 1
    print(
        f"\nplacement audit: {placed} actors and tasks, all on their pool's nodes; "
        f"{data_tasks} Ray Data read and sampling tasks, none on a serve node"
    )
    missing = [pool for pool, count in placed.items() if count == 0] + ["data"] * (not data_tasks)
    assert not missing, f"no work on record for {missing}: run the whole suite, not this test alone"
