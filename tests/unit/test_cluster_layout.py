from __future__ import annotations

from pathlib import Path

import pytest

from tandem.cluster.layout import HEAD, PORT_SPAN, PortPlan, plan_embedded, split_cores
from tandem.errors import SpecError
from tandem.specs import ClusterSpec
from tandem.specs.base import read_yaml
from tandem.specs.cluster import launcher_schema_problems

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
