"""Reach the cluster: the embedded one under ``TANDEM_HOME`` or a remote one.

The only module that calls ``ray.init``.
"""

from __future__ import annotations

import logging
import os

import ray

import tandem.cluster.local as local
from tandem.cluster.layout import EmbeddedLayout, plan_embedded
from tandem.defaults import cluster_file
from tandem.errors import ClusterError
from tandem.settings import Settings
from tandem.specs import ClusterSpec


def embedded_layout(
    settings: Settings, pinned: bool = True, work_conserving: bool = False
) -> EmbeddedLayout:
    """The embedded cluster's plan for this machine, from cluster.yaml's pools."""
    spec = (
        ClusterSpec.from_file(settings.cluster_file)
        if settings.cluster_file.exists()
        else (default_cluster_spec())
    )
    cores = sorted(os.sched_getaffinity(0))
    return plan_embedded(
        spec,
        cores,
        settings.port_base,
        gpus=_local_gpus(),
        pinned=pinned,
        work_conserving=work_conserving,
    )


def default_cluster_spec() -> ClusterSpec:
    """Pools used when no cluster.yaml is at hand: the repository's, shipped in the package."""
    with cluster_file() as path:
        return ClusterSpec.from_file(path)


def _local_gpus() -> list[str]:
    """This machine's GPUs as ``CUDA_VISIBLE_DEVICES`` ids, within what this process may see."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return visible_gpu_ids(os.environ.get("CUDA_VISIBLE_DEVICES"), count)


def visible_gpu_ids(visible: str | None, count: int) -> list[str]:
    """The ids to hand pool nodes: ``CUDA_VISIBLE_DEVICES``' own entries when it is set
    (a node's value must name GPUs as the machine does, not as this process renumbers
    them), else ``0 … count-1``."""
    if visible is None:
        return [str(index) for index in range(count)]
    ids = [entry.strip() for entry in visible.split(",") if entry.strip()]
    return ids[:count]


def up(
    settings: Settings, pinned: bool = True, work_conserving: bool = False
) -> local.ClusterState:
    """Start the embedded cluster (a no-op when it already runs). ``pinned=False`` puts every
    node on every core; ``work_conserving`` lets training use the serve cores while idle."""
    if not settings.embedded:
        raise ClusterError(
            f"RAY_ADDRESS names a cluster ({settings.ray_address}); `tandem up` starts only "
            "the embedded single-machine cluster (a real cluster starts with Ray's "
            "`ray up cluster.yaml`). Unset RAY_ADDRESS to start the embedded one here."
        )
    layout = embedded_layout(settings, pinned=pinned, work_conserving=work_conserving)
    return local.start(layout, settings)


def running_state(settings: Settings) -> local.ClusterState:
    state = local.ClusterState.read(settings)
    if state is None or not state.alive():
        raise ClusterError(
            f"no embedded cluster runs under {settings.home}; start one with `tandem up`"
        )
    return state


def use_embedded_auth(settings: Settings) -> None:
    """Point this process's Ray client libraries at the embedded cluster's token."""
    os.environ.update(
        {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(settings.auth_token_path),
        }
    )
    # Ray reads its auth mode into a cached config when it is imported; refresh it so the
    # new mode applies.
    from tandem.ray_private import reset_auth_cache

    reset_auth_cache()


def _embedded_state(settings: Settings, start: bool) -> local.ClusterState:
    """The embedded cluster, started when asked; one that ``RAY_ADDRESS`` names (a job
    driver on it, a shell after ``tandem env``) is reached as it is, never restarted."""
    if settings.attached and (state := local.ClusterState.read(settings)) is not None:
        return state
    return up(settings) if start else running_state(settings)


def gcs_address(settings: Settings, start: bool = True) -> str:
    """The GCS address to ``ray.init`` against, starting the embedded cluster if asked."""
    if not settings.embedded:
        return settings.remote_gcs_address
    state = _embedded_state(settings, start)
    use_embedded_auth(settings)
    return state.gcs_address


def jobs_api_address(settings: Settings, start: bool = True) -> str:
    """The Ray jobs/dashboard HTTP address (auth token configured for this process)."""
    if not settings.embedded:
        return settings.remote_api_address
    state = _embedded_state(settings, start)
    use_embedded_auth(settings)
    return state.dashboard_url


def connect(settings: Settings, start: bool = True) -> None:
    """``ray.init`` against the cluster once per process."""
    if ray.is_initialized():
        return
    ray.init(
        address=gcs_address(settings, start=start),
        log_to_driver=True,
        logging_level=logging.WARNING,
        configure_logging=True,
    )
