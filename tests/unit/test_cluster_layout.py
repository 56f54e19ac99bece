from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tandem.cluster.layout import (
    HEAD,
    POLICY,
    PORT_SPAN,
    THROUGHPUT_NICENESS,
    PortPlan,
    gpu_weights,
    plan_embedded,
    split_cores,
    split_gpus,
)
from tandem.cluster.local import ClusterState, node_command, node_env, node_temp_dir, ray_temp_dir
from tandem.cluster.session import visible_gpu_ids
from tandem.cluster.status import NodeStatus
from tandem.errors import SpecError
from tandem.settings import Settings
from tandem.specs import ClusterSpec, Pool
from tandem.specs.base import read_yaml
from tandem.specs.cluster import POOL_LABEL, launcher_schema_problems

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def spec() -> ClusterSpec:
    return ClusterSpec.from_file(REPO / "cluster.yaml")


def test_cluster_yaml_passes_rays_own_launcher_schema() -> None:
    assert launcher_schema_problems(read_yaml(REPO / "cluster.yaml")) == []


def test_cluster_yaml_declares_the_three_pools(spec: ClusterSpec) -> None:
    assert set(spec.pools) == {"train", "serve", "batch"}


def test_a_pool_without_matching_label_is_refused() -> None:
    config = read_yaml(REPO / "cluster.yaml")
    config["available_node_types"]["serve"]["labels"] = {}
    with pytest.raises(SpecError) as info:
        ClusterSpec.from_launcher_config(config)
    assert any("available_node_types.serve.labels" in p for p in info.value.problems)


def with_node_type(resources: dict[str, int], label: str) -> dict[str, object]:
    """The repo's cluster.yaml with one more node type, ``extra``."""
    config = read_yaml(REPO / "cluster.yaml")
    config["available_node_types"]["extra"] = {
        "resources": resources,
        "labels": {POOL_LABEL: label},
        "node_config": {"InstanceType": "c6i.2xlarge"},
        "min_workers": 0,
        "max_workers": 1,
    }
    return config


@pytest.mark.parametrize("pool", ["extra", "head"])
def test_a_pool_tandem_does_not_know_is_refused_by_name(pool: str) -> None:
    """Before ``Pool``, a fourth pool passed validation and raised ``KeyError`` at ``tandem up``."""
    config = with_node_type({"CPU": 2, f"pool_{pool}": 1000}, pool)
    with pytest.raises(SpecError) as info:
        ClusterSpec.from_launcher_config(config)
    (problem,) = info.value.problems
    assert problem.startswith(f"available_node_types.extra.resources: pool_{pool} names no pool")
    assert "train, serve, batch" in problem


def test_pools_are_their_names_on_the_wire(spec: ClusterSpec) -> None:
    assert list(spec.pools) == [Pool.TRAIN, Pool.SERVE, Pool.BATCH] == ["train", "serve", "batch"]
    layout = plan_embedded(spec, [0, 1, 2, 3], port_base=30000)
    serve = layout.node(Pool.SERVE)
    assert serve.resources == {"pool_serve": 1000} and serve.labels == {POOL_LABEL: "serve"}
    assert json.loads(json.dumps({node.name: node.labels for node in layout.nodes})) == {
        "head": {POOL_LABEL: "head"},
        "train": {POOL_LABEL: "train"},
        "serve": {POOL_LABEL: "serve"},
        "batch": {POOL_LABEL: "batch"},
    }


def test_the_policy_table_covers_the_head_and_every_pool(spec: ClusterSpec) -> None:
    assert set(POLICY) == {HEAD, *Pool}
    assert [name for name, policy in POLICY.items() if policy.latency_critical] == [HEAD, "serve"]
    layout = plan_embedded(spec, [0, 1, 2, 3], port_base=30000)
    for index, node in enumerate(layout.nodes):  # every node's command reads its policy
        command = node_command(node, layout, index, Path("/tmp/t"))
        assert any(arg.startswith("--object-store-memory=") for arg in command)


def test_two_cores_keep_serve_alone(spec: ClusterSpec) -> None:
    split = split_cores(spec, [0, 1])
    assert split["serve"] == (1,)
    assert split["train"] == split["batch"] == (0,)


def test_many_cores_give_each_pool_its_own_share(spec: ClusterSpec) -> None:
    split = split_cores(spec, list(range(16)))
    assigned = [c for cores in split.values() for c in cores]
    assert sorted(assigned) == list(range(16))  # disjoint and complete
    assert len(split["train"]) == 8 and len(split["serve"]) == 4


def test_head_never_runs_on_serve_cores(spec: ClusterSpec) -> None:
    layout = plan_embedded(spec, [0, 1, 2, 3], port_base=30000)
    assert not set(layout.node(HEAD).cores) & set(layout.node("serve").cores)
    assert layout.node("serve").resources == {"pool_serve": 1000}


def test_unpinned_layout_shares_every_core(spec: ClusterSpec) -> None:
    layout = plan_embedded(spec, [0, 1], port_base=30000, pinned=False)
    assert all(node.cores == (0, 1) for node in layout.nodes)


def test_training_borrows_the_serve_cores_only_when_work_conserving(spec: ClusterSpec) -> None:
    layout = plan_embedded(spec, [0, 1, 2, 3], port_base=30000, work_conserving=True)
    train, serve = layout.node("train"), layout.node("serve")
    assert train.borrowed_cores == serve.cores
    assert train.affinity == tuple(sorted(train.cores + serve.cores))
    # Ray's count stays the pool's own cores; nobody else borrows.
    assert train.num_cpus == 2 * len(train.cores)
    assert all(node.affinity == node.cores for node in layout.nodes if node.name != "train")
    # Only the borrower drops to the idle scheduling class.
    assert [node.name for node in layout.nodes if node.idle_class] == ["train"]
    static = plan_embedded(spec, [0, 1, 2, 3], port_base=30000)  # the default
    assert static.node("train").affinity == static.node("train").cores
    assert not any(node.idle_class for node in static.nodes)
    unpinned = plan_embedded(spec, [0, 1], port_base=30000, pinned=False, work_conserving=True)
    assert unpinned.node("train").borrowed_cores == ()


def test_ports_of_one_cluster_stay_inside_its_span() -> None:
    plan = PortPlan(30000)
    used = [plan.gcs, plan.dashboard, plan.client_server, plan.serve_http]
    used += plan.serve_ingress_ports().values()
    for index in range(4):
        used += plan.node_ports(index).values()
        used += plan.worker_port_range(index)
    used += plan.direct_ingress_range()
    assert len(set(used)) == len(used)
    assert all(30000 <= port < 30000 + PORT_SPAN for port in used)


def test_throughput_pools_yield_the_cpu_to_the_request_path(spec: ClusterSpec) -> None:
    layout = plan_embedded(spec, [0, 1], port_base=30000)
    niceness = {node.name: node.worker_niceness for node in layout.nodes}
    assert niceness["head"] == niceness["serve"] == 0
    assert niceness["train"] > 0 and niceness["batch"] > 0
    # Each node is its own scheduling group: the group's priority decides between nodes.
    groups = {node.name: node.group_niceness for node in layout.nodes}
    assert groups["head"] == groups["serve"] == 0
    assert groups["train"] == groups["batch"] == 19
    # Ray's agents on the serve node yield its cores to the replicas.
    assert [node.name for node in layout.nodes if node.support_in_idle_class] == ["serve"]


def gpu_spec(**gpus: int) -> ClusterSpec:
    """The repo's cluster.yaml with ``GPU`` resources on the named node types."""
    config = read_yaml(REPO / "cluster.yaml")
    for pool, count in gpus.items():
        config["available_node_types"][pool]["resources"]["GPU"] = count
    return ClusterSpec.from_launcher_config(config)


def ids(count: int) -> list[str]:
    return [str(i) for i in range(count)]


def assert_disjoint(split: dict[str, tuple[str, ...]], gpus: list[str]) -> None:
    owned = [gpu for pool_gpus in split.values() for gpu in pool_gpus]
    assert len(owned) == len(set(owned)), f"a GPU is in two pools: {split}"
    assert sorted(owned) == sorted(gpus), f"every GPU goes to exactly one pool: {split}"


def test_node_types_gpu_resources_are_the_pool_shares() -> None:
    spec = gpu_spec(train=4, serve=1)
    assert spec.pools["train"].gpus == 4 and spec.pools["serve"].gpus == 1
    assert gpu_weights(spec) == {"train": 4, "serve": 1}


def test_without_gpus_in_cluster_yaml_train_and_serve_share_them(spec: ClusterSpec) -> None:
    assert all(pool.gpus == 0 for pool in spec.pools.values())
    assert gpu_weights(spec) == {"train": 1, "serve": 1}


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, {"train": 0, "serve": 0, "batch": 0}),
        (1, {"train": 1, "serve": 0, "batch": 0}),  # one GPU: train first
        (2, {"train": 1, "serve": 1, "batch": 0}),
        (3, {"train": 2, "serve": 1, "batch": 0}),  # the remainder: train first on a tie
        (8, {"train": 4, "serve": 4, "batch": 0}),
    ],
)
def test_default_split_gives_train_and_serve_halves(
    spec: ClusterSpec, count: int, expected: dict[str, int]
) -> None:
    layout = plan_embedded(spec, list(range(8)), port_base=30000, gpus=ids(count))
    assert {pool: layout.node(pool).num_gpus for pool in expected} == expected
    assert layout.node(HEAD).gpus == ()
    assert_disjoint({n.name: n.gpus for n in layout.nodes}, ids(count))


@pytest.mark.parametrize(
    ("weights", "count", "expected"),
    [
        ({"train": 4, "serve": 2, "batch": 2}, 8, {"train": 4, "serve": 2, "batch": 2}),
        ({"train": 6, "serve": 1, "batch": 1}, 8, {"train": 6, "serve": 1, "batch": 1}),
        ({"train": 1, "serve": 1, "batch": 1}, 2, {"train": 1, "serve": 1, "batch": 0}),
        ({"train": 1, "serve": 1, "batch": 1}, 7, {"train": 3, "serve": 2, "batch": 2}),
        # every pool that declares GPUs gets one when there are enough to go round
        ({"train": 16, "serve": 1}, 4, {"train": 3, "serve": 1}),
        # fewer GPUs than pools: the pool declaring the most first
        ({"train": 1, "serve": 2}, 1, {"train": 0, "serve": 1}),
        ({"batch": 1}, 1, {"batch": 1}),
        ({"train": 2, "serve": 1}, 0, {"train": 0, "serve": 0}),
    ],
)
def test_gpus_split_in_proportion_and_never_twice(
    weights: dict[str, int], count: int, expected: dict[str, int]
) -> None:
    split = split_gpus(weights, ids(count))
    assert {pool: len(gpus) for pool, gpus in split.items()} == expected
    assert_disjoint(split, ids(count))


def test_each_pool_gets_consecutive_gpus_of_the_machines_own_ids() -> None:
    # CUDA_VISIBLE_DEVICES=4,5,6 on the machine: nodes must name those GPUs, not 0,1,2.
    split = split_gpus({"train": 2, "serve": 1}, ["4", "5", "6"])
    assert split == {"train": ("4", "5"), "serve": ("6",)}


def test_only_pools_that_declare_gpus_get_them() -> None:
    layout = plan_embedded(gpu_spec(serve=1), [0, 1, 2, 3], port_base=30000, gpus=ids(2))
    assert layout.node("serve").gpus == ("0", "1")
    assert layout.node("train").num_gpus == layout.node("batch").num_gpus == 0


def test_each_node_sees_only_its_own_gpus(spec: ClusterSpec) -> None:
    layout = plan_embedded(spec, [0, 1, 2, 3], port_base=30000, gpus=ids(2))
    env = {plan.name: node_env(plan)["CUDA_VISIBLE_DEVICES"] for plan in layout.nodes}
    assert env == {"head": "", "train": "0", "serve": "1", "batch": ""}
    for index, plan in enumerate(layout.nodes):
        command = node_command(plan, layout, index, Path("/tmp/ray"))
        assert f"--num-gpus={len(plan.gpus)}" in command


@pytest.mark.parametrize(
    ("visible", "count", "expected"),
    [
        (None, 2, ["0", "1"]),
        (None, 0, []),
        ("3,1", 2, ["3", "1"]),
        ("GPU-aa11, GPU-bb22", 2, ["GPU-aa11", "GPU-bb22"]),
        ("", 0, []),
        ("2,7", 1, ["2"]),  # CUDA stops at the first id it cannot use
    ],
)
def test_gpu_ids_follow_the_parents_cuda_visible_devices(
    visible: str | None, count: int, expected: list[str]
) -> None:
    assert visible_gpu_ids(visible, count) == expected


def test_a_state_file_from_before_gpus_still_reads(tmp_path: Path) -> None:
    settings = Settings.from_env()
    settings = dataclasses.replace(settings, home=tmp_path)
    old = {
        "gcs_address": "127.0.0.1:30000",
        "dashboard_url": "http://127.0.0.1:30001",
        "serve_http_port": 30003,
        "process_groups": {"head": 1},
        "cores": {"head": [0]},
        "pinned": True,
    }
    (tmp_path / "cluster.json").write_text(json.dumps(old))
    state = ClusterState.read(settings)
    assert state is not None and state.gpus == {}


def test_status_shows_gpu_ids_or_a_count() -> None:
    def node(gpus: list[str], resources: dict[str, float]) -> NodeStatus:
        return NodeStatus("n", "train", True, resources, resources, [0], gpus=gpus)

    assert node(["0", "1"], {"GPU": 2.0}).gpu_summary() == "0,1"
    assert node([], {"GPU": 4.0}).gpu_summary() == "4"  # a remote cluster: the count only
    assert node([], {"CPU": 4.0}).gpu_summary() == "-"


@pytest.mark.parametrize(
    "home", ["/h", "/root/.tandem", "/tmp/pytest-of-root/pytest-145/tandem-home0"]
)
def test_each_node_has_its_own_short_ray_temp_dir(home: str) -> None:
    """Nodes sharing a session folder delete each other's job packages; and Ray's socket
    paths (temp dir, a 40-character session name, ``/sockets/plasma_store``) must fit
    in 107 bytes."""
    settings = dataclasses.replace(Settings.from_env(), home=Path(home))
    folders = {node: node_temp_dir(settings, node) for node in ("head", "train", "serve", "batch")}
    assert len(set(folders.values())) == len(folders)
    session = "session_2026-11-27_22-51-55_584352_3577"
    assert all(len(f"{f}/{session}/sockets/plasma_store") <= 107 for f in folders.values())
    assert folders["head"] == ray_temp_dir(settings)


@pytest.mark.parametrize(("start", "expected"), [(0, THROUGHPUT_NICENESS), (19, 19)])
def test_a_job_driver_lowers_itself_to_the_throughput_priority(start: int, expected: int) -> None:
    """In a child process (a nice level cannot be raised back): lowered to the train and
    batch workers' level, never raised, and threads started afterwards inherit it."""
    script = (
        "import os, threading\n"
        f"os.setpriority(os.PRIO_PROCESS, 0, max({start}, os.getpriority(os.PRIO_PROCESS, 0)))\n"
        "from tandem.cluster.pools import run_at_throughput_priority\n"
        "run_at_throughput_priority()\n"
        "seen = []\n"
        "nice = lambda: os.getpriority(os.PRIO_PROCESS, 0)\n"
        "thread = threading.Thread(target=lambda: seen.append(nice()))\n"
        "thread.start(); thread.join()\n"
        "print(nice(), seen[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    expected = max(expected, os.getpriority(os.PRIO_PROCESS, 0))  # a child starts at ours
    assert done.stdout.split() == [str(expected), str(expected)]
