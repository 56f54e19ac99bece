"""Plan the embedded cluster: which cores, GPUs and ports each node of each pool gets.

Pure logic, unit-tested without Ray. On one machine Tandem runs one raylet per
pool, each started under a CPU affinity; every worker it forks inherits that
affinity, so a pool's processes run only on its cores (work-conserving clusters let
training also use the serve cores at its scheduling group's lowest weight:
``NodePolicy.borrows_idle_cores_of``). How each pool is treated is written down once,
in ``POLICY``. GPUs are split the same way: each pool node is started
with ``CUDA_VISIBLE_DEVICES`` naming only its own GPUs, so no GPU is ever
advertised to two pools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tandem.settings import SERVE_HTTP_OFFSET
from tandem.specs import POOL_LABEL, ClusterSpec, Pool, pool_resource

HEAD = "head"
"""The head node's name and its ``tandem.io/pool`` label: it runs the control plane, and no
work asks for it as a pool, but it has a policy like one."""
# Logical CPUs a pool node advertises per physical core. Logical CPUs are Ray's
# bookkeeping only: oversubscribing lets Ray Data's read tasks run beside train
# workers that reserve whole CPUs, while the affinity keeps the pool physical.
LOGICAL_CPUS_PER_CORE = 2
MIN_LOGICAL_CPUS = 4
POOL_RESOURCE_UNITS = 1000
PORT_SPAN = 1000
"""Ports one embedded cluster uses, from its base (four nodes at most)."""
THROUGHPUT_NICENESS = 15
"""Nice level of a throughput node's Ray workers (see ``NodePlan.worker_niceness``)."""
THROUGHPUT_GROUP_NICENESS = 19
"""Nice level of a throughput node's scheduling group (see ``NodePlan.group_niceness``)."""


@dataclass(frozen=True)
class NodePolicy:
    """How the embedded cluster treats one node: the head or a pool's."""

    latency_critical: bool
    """Whether it is on the request path. A latency-critical pool gets cores of its own
    whenever there are two or more; the others share what is left when there are too
    few. Its workers and scheduling group keep the default priority, the others' yield
    (``worker_niceness``, ``group_niceness``)."""
    object_store_share: float
    """Share of the machine's memory for the node's object store."""
    support_in_idle_class: bool = False
    """Whether Ray's support processes on the node run in the idle scheduling class
    (``NodePlan.support_in_idle_class``)."""
    gpu_rank: int | None = None
    """Who gets a GPU first when there are fewer GPUs than pools that want one (0 first):
    training needs one most (its throughput scales with it), serving next. None: the head,
    which never gets one."""
    fallback_gpu_weight: int = 0
    """Its claim on the GPUs when no node type in cluster.yaml declares any."""
    borrows_idle_cores_of: Pool | None = None
    """Work-conserving pools (``tandem up --work-conserving``): the pool whose cores this
    one may also run on, in Linux's idle scheduling class (``NodePlan.idle_class``). Off by
    default (measured in docs/performance.md)."""

    @property
    def worker_niceness(self) -> int:
        return 0 if self.latency_critical else THROUGHPUT_NICENESS

    @property
    def group_niceness(self) -> int:
        return 0 if self.latency_critical else THROUGHPUT_GROUP_NICENESS


POLICY: dict[str, NodePolicy] = {
    HEAD: NodePolicy(latency_critical=True, object_store_share=0.02),
    Pool.TRAIN: NodePolicy(
        latency_critical=False,
        object_store_share=0.10,
        gpu_rank=0,
        fallback_gpu_weight=1,
        borrows_idle_cores_of=Pool.SERVE,
    ),
    Pool.SERVE: NodePolicy(
        latency_critical=True,
        object_store_share=0.03,
        support_in_idle_class=True,
        gpu_rank=1,
        fallback_gpu_weight=1,
    ),
    Pool.BATCH: NodePolicy(latency_critical=False, object_store_share=0.06, gpu_rank=2),
}
"""Every node's policy, the head's and each pool's: the one place it is written down. The
sizes of the core and GPU shares are not policy but cluster.yaml's: each pool's node type's
``CPU`` and ``GPU`` resources (``split_cores``, ``gpu_weights``)."""
HEAD_SHARES_CORES_WITH = Pool.TRAIN
"""The head runs the control plane and job drivers: on the training cores, never on the
latency-critical pool's."""


@dataclass(frozen=True)
class PortPlan:
    """Every port of the embedded cluster, derived from one base so clusters never collide."""

    base: int

    @property
    def gcs(self) -> int:
        return self.base

    @property
    def dashboard(self) -> int:
        return self.base + 1

    @property
    def client_server(self) -> int:
        return self.base + 2

    @property
    def serve_http(self) -> int:
        return self.base + SERVE_HTTP_OFFSET

    def serve_ingress_ports(self) -> dict[str, int]:
        """Serve's ingress side ports: HAProxy's metrics and stats, the fallback Python proxy."""
        return {
            "haproxy_metrics": self.base + 5,
            "haproxy_stats": self.base + 6,
            "fallback_proxy_http": self.base + 7,
            "fallback_proxy_grpc": self.base + 8,
        }

    def node_ports(self, index: int) -> dict[str, int]:
        first = self.base + 10 + 10 * index
        return {
            "node-manager-port": first,
            "object-manager-port": first + 1,
            "dashboard-agent-listen-port": first + 2,
            "dashboard-agent-grpc-port": first + 3,
            "metrics-export-port": first + 4,
            "runtime-env-agent-port": first + 5,
        }

    def worker_port_range(self, index: int) -> tuple[int, int]:
        first = self.base + 100 + 200 * index
        return first, first + 199

    def direct_ingress_range(self) -> tuple[int, int]:
        """Ports Serve replicas may bind for their own HTTP servers."""
        return self.base + 900, self.base + PORT_SPAN - 1


@dataclass(frozen=True)
class NodePlan:
    name: str
    """``head`` or the pool name."""
    cores: tuple[int, ...]
    """Physical cores this node owns (its logical CPUs are counted from them)."""
    num_cpus: int
    """Logical CPUs it advertises to Ray."""
    gpus: tuple[str, ...] = ()
    """GPUs this node owns (its ``CUDA_VISIBLE_DEVICES``); no other node sees them."""
    resources: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    borrowed_cores: tuple[int, ...] = ()
    """Another pool's cores this node may also run on, when that pool leaves them idle
    (``NodePolicy.borrows_idle_cores_of``)."""

    @property
    def affinity(self) -> tuple[int, ...]:
        """Cores this node's processes are pinned to: its own and the borrowed ones."""
        return tuple(sorted({*self.cores, *self.borrowed_cores}))

    @property
    def num_gpus(self) -> int:
        """GPUs it advertises to Ray: exactly the ones it owns."""
        return len(self.gpus)

    @property
    def worker_niceness(self) -> int:
        """Nice level of the Ray workers this node starts (Ray's default is 15 for all).

        Where cores are shared (the head's with the throughput pools on a small
        machine, every core when pools are not pinned), the request path must win:
        the head runs HAProxy and Serve's controller, so head and serve workers
        keep the default priority and train/batch workers yield to them."""
        return POLICY[self.name].worker_niceness

    @property
    def group_niceness(self) -> int:
        """Nice level of the node's scheduling group (Linux autogroup).

        Each node runs in its own session, and with ``kernel.sched_autogroup_enabled``
        each session is a scheduling group: groups share a core as equals whatever their
        processes' nice values, so a busy train node would take half of a core it shares
        with the head's HAProxy. Lowering the group's priority makes the whole node yield
        (measured by hand: two busy nice-19 sessions beside the request path doubled its
        p99; at group nice 19 it was back within 15%)."""
        return POLICY[self.name].group_niceness

    @property
    def support_in_idle_class(self) -> bool:
        """Whether Ray's support processes on this node (its dashboard and runtime-env
        agents, its log monitor) run in the idle scheduling class: on the serve node, where
        they share the replicas' cores. Measured there: the dashboard agent used 7-8% of
        the serve core in bursts of 100-200 ms that lined up with the slowest requests."""
        return POLICY[self.name].support_in_idle_class

    @property
    def idle_class(self) -> bool:
        """Whether the node runs in Linux's idle scheduling class (``SCHED_IDLE``): a node
        that borrows another pool's cores. A low group weight alone is not enough there:
        the scheduler lets a running task finish its slice (a few ms) before a waking
        request handler gets the core, while a task of the idle class is preempted the
        moment any other task wakes on its core."""
        return bool(self.borrowed_cores)


@dataclass(frozen=True)
class EmbeddedLayout:
    nodes: tuple[NodePlan, ...]
    ports: PortPlan
    pinned: bool

    def node(self, name: str) -> NodePlan:
        for plan in self.nodes:
            if plan.name == name:
                return plan
        raise KeyError(name)


def split_cores(spec: ClusterSpec, cores: list[int]) -> dict[str, tuple[int, ...]]:
    """Give each pool cores in proportion to its CPUs in cluster.yaml.

    The latency-critical pool (serve) always gets cores of its own when there are
    at least two; the throughput pools (train, batch) then share what is left when
    there are too few cores for each to own some.
    """
    cores = sorted(cores)
    if len(cores) < 2:
        return {pool: tuple(cores) for pool in spec.pools}
    weights: dict[str, int] = {pool: max(p.cpus, 1) for pool, p in spec.pools.items()}
    total = sum(weights.values())
    critical = [pool for pool in spec.pools if POLICY[pool].latency_critical]
    assert len(critical) == 1, f"one latency-critical pool gets its own cores, not {critical}"
    alone = critical[0]
    alone_share = max(1, min(len(cores) - 1, round(len(cores) * weights[alone] / total)))
    rest = cores[:-alone_share]
    others = [pool for pool in spec.pools if pool != alone]
    split: dict[str, tuple[int, ...]] = {alone: tuple(cores[-alone_share:])}
    if len(rest) < len(others):
        return split | {pool: tuple(rest) for pool in others}
    other_total = sum(weights[p] for p in others)
    start = 0
    for i, pool in enumerate(others):
        left_for_later = len(others) - i - 1
        if left_for_later == 0:
            count = len(rest) - start
        else:
            wanted = round(len(rest) * weights[pool] / other_total)
            count = max(1, min(wanted, len(rest) - start - left_for_later))
        split[pool] = tuple(rest[start : start + count])
        start += count
    return split


def gpu_weights(spec: ClusterSpec) -> dict[str, int]:
    """Each pool's claim on this machine's GPUs: its node type's ``GPU`` resource in
    cluster.yaml, or its ``NodePolicy.fallback_gpu_weight`` when no node type declares any."""
    declared: dict[str, int] = {pool: p.gpus for pool, p in spec.pools.items() if p.gpus > 0}
    if declared:
        return declared
    fallback = {pool: POLICY[pool].fallback_gpu_weight for pool in spec.pools}
    return {pool: weight for pool, weight in fallback.items() if weight > 0}


def split_gpus(weights: dict[str, int], gpus: list[str]) -> dict[str, tuple[str, ...]]:
    """Give each pool whole GPUs in proportion to its weight; no GPU goes to two pools.

    With at least one GPU per weighted pool: proportional shares, rounded by largest
    remainder, and every weighted pool gets at least one (taken from the pool with the
    most). With fewer GPUs than weighted pools: one each, in order of weight, ties in
    ``NodePolicy.gpu_rank`` order, so a single GPU goes to train unless another pool declares
    more GPUs than train does. Pools with no weight get none. Each pool's GPUs are
    consecutive in the order given.
    """
    order = sorted(
        (pool for pool, weight in weights.items() if weight > 0),
        key=lambda pool: (-weights[pool], _priority(pool)),
    )
    if len(gpus) <= len(order):
        counts = {pool: int(i < len(gpus)) for i, pool in enumerate(order)}
    else:
        total = sum(weights[pool] for pool in order)
        quota = {pool: len(gpus) * weights[pool] / total for pool in order}
        counts = {pool: int(quota[pool]) for pool in order}
        by_remainder = sorted(order, key=lambda p: (counts[p] - quota[p], order.index(p)))
        for pool in by_remainder[: len(gpus) - sum(counts.values())]:
            counts[pool] += 1
        for pool in order:
            if counts[pool] == 0:
                richest = max(order, key=lambda p: (counts[p], _priority(p)))
                counts[richest] -= 1
                counts[pool] = 1
    split: dict[str, tuple[str, ...]] = {}
    start = 0
    for pool in sorted(counts, key=_priority):
        split[pool] = tuple(gpus[start : start + counts[pool]])
        start += counts[pool]
    return split


def _priority(pool: str) -> int:
    rank = POLICY[pool].gpu_rank if pool in POLICY else None
    return len(POLICY) if rank is None else rank


def plan_embedded(
    spec: ClusterSpec,
    cores: list[int],
    port_base: int,
    gpus: list[str] | None = None,
    pinned: bool = True,
    work_conserving: bool = False,
) -> EmbeddedLayout:
    """The nodes of an embedded cluster on a machine with ``cores`` and ``gpus`` (the
    GPUs' ``CUDA_VISIBLE_DEVICES`` ids as this process sees them). ``work_conserving``:
    a pool with ``NodePolicy.borrows_idle_cores_of`` may also run on its lender's cores."""
    split: dict[str, tuple[int, ...]] = (
        split_cores(spec, cores) if pinned else {p: tuple(sorted(cores)) for p in spec.pools}
    )
    gpu_split = split_gpus(gpu_weights(spec), list(gpus or []))
    head_cores = split.get(HEAD_SHARES_CORES_WITH) or tuple(sorted(cores))
    nodes = [NodePlan(HEAD, head_cores, num_cpus=0, labels={POOL_LABEL: HEAD})]
    for pool in spec.pools:
        pool_cores = split[pool]
        lender = POLICY[pool].borrows_idle_cores_of if pinned and work_conserving else None
        borrowed = tuple(c for c in split.get(lender or "", ()) if c not in pool_cores)
        nodes.append(
            NodePlan(
                name=pool,
                cores=pool_cores,
                num_cpus=max(MIN_LOGICAL_CPUS, LOGICAL_CPUS_PER_CORE * len(pool_cores)),
                gpus=gpu_split.get(pool, ()),
                resources={pool_resource(pool): POOL_RESOURCE_UNITS},
                labels={POOL_LABEL: pool},
                borrowed_cores=borrowed,
            )
        )
    return EmbeddedLayout(nodes=tuple(nodes), ports=PortPlan(port_base), pinned=pinned)
