"""The embedded cluster on a real Ray: pools are physical, auth is on, the CLI works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import ray

from factories import REPO
from serving import infer_body, labels_of, ray_cli_env, register_digits, wait_for
from tandem import Client
from tandem.cluster import local, pool_options
from tandem.serve import control
from tandem.settings import Settings

pytestmark = pytest.mark.train_pool_idle  # test_train's jobs train meanwhile

ENV_MODEL = "digits-env"
SHIPPED_MODEL = "digits-mlp"
RAYLET_BROADCAST = re.compile(r"^.*\(raylet\).*\n?", re.MULTILINE)
"""A raylet's cluster-wide warning (one starting many workers for a job training meanwhile),
which Ray prints into every connected driver's stdout: not the command's output."""


@ray.remote
def where() -> tuple[list[int], str]:
    import platform

    return sorted(os.sched_getaffinity(0)), platform.system()


@pytest.mark.parametrize("pool", ["train", "serve", "batch"])
def test_pool_work_runs_only_on_its_cores(cluster: Settings, pool: str) -> None:
    state = local.ClusterState.read(cluster)
    assert state is not None
    cores, system = ray.get(where.options(**pool_options(pool)).remote())
    assert cores == state.cores[pool]
    assert system == "Linux"  # `platform` is still the standard library in workers


def test_throughput_nodes_run_in_lowest_priority_scheduling_groups(cluster: Settings) -> None:
    """Each node is a session, so (with autogroups on) its own scheduling group."""
    state = local.ClusterState.read(cluster)
    assert state is not None
    groups = Path("/proc/sys/kernel/sched_autogroup_enabled")
    if not groups.exists() or groups.read_text().strip() != "1":
        pytest.skip("this kernel schedules without autogroups")
    nice = {
        name: int(Path(f"/proc/{pgid}/autogroup").read_text().split()[-1])
        for name, pgid in state.process_groups.items()
    }
    assert nice == {"head": 0, "serve": 0, "train": 19, "batch": 19}


def test_the_serve_nodes_agents_run_in_the_idle_class_and_its_raylet_does_not(
    cluster: Settings,
) -> None:
    state = local.ClusterState.read(cluster)
    assert state is not None
    policies = {}
    for pid in Path("/proc").iterdir():
        if pid.name.isdigit() and os.getsid(int(pid.name)) == state.process_groups["serve"]:
            command = (pid / "cmdline").read_bytes()
            policies[command.split(b"\0")[0].split(b"/")[-1]] = os.sched_getscheduler(int(pid.name))
    assert policies[b"ray::DashboardAgent"] == os.SCHED_IDLE
    assert policies[b"ray::RuntimeEnvAgent"] == os.SCHED_IDLE
    assert policies[b"raylet"] == os.SCHED_OTHER  # its workers (the replicas) inherit it


def test_serve_and_train_cores_are_disjoint(cluster: Settings) -> None:
    state = local.ClusterState.read(cluster)
    assert state is not None
    assert not set(state.cores["serve"]) & set(state.cores["train"])


def test_stdlib_platform_is_not_shadowed_from_repo_root() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.system())"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "Linux"


def tandem(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "tandem"), *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        cwd=REPO,
    )


def test_status_lists_every_pool(cluster: Settings) -> None:
    result = tandem("status")
    assert result.returncode == 0, result.stderr
    for pool in ("head", "train", "serve", "batch"):
        assert pool in result.stdout


def test_env_lets_rays_own_job_cli_submit_with_the_token(cluster: Settings) -> None:
    ray_cli = str(Path(sys.executable).parent / "ray")
    job = subprocess.run(
        [
            ray_cli,
            "job",
            "submit",
            "--",
            "python",
            "-c",
            "import platform; print('ok', platform.system())",
        ],
        capture_output=True,
        text=True,
        env=ray_cli_env(),
        timeout=180,
    )
    assert job.returncode == 0, job.stderr[-2000:]
    assert "ok Linux" in job.stdout


def test_after_tandem_env_every_command_still_means_the_embedded_cluster(
    cluster: Settings,
) -> None:
    """Same storage, same ports, same output with the exports as without them."""
    register_digits(cluster, (ENV_MODEL,))
    exported = ray_cli_env()
    assert exported["RAY_ADDRESS"]
    for command in (["models", "show", ENV_MODEL], ["up"], ["deployments"]):
        plain, attached = tandem(*command), tandem(*command, env=exported)
        assert plain.returncode == 0 and attached.returncode == 0, attached.stderr
        assert RAYLET_BROADCAST.sub("", attached.stdout) == RAYLET_BROADCAST.sub("", plain.stdout)
    client = Client()
    with_env = subprocess.run(
        [sys.executable, "-c", "import tandem; print(tandem.Client().endpoint)"],
        capture_output=True,
        text=True,
        env=exported,
        check=True,
    )
    assert with_env.stdout.strip() == client.endpoint == control.endpoint(cluster)


def test_serve_deploy_of_a_shipped_file_then_tandem_follows_it(cluster: Settings) -> None:
    """Ray's own `serve deploy` of deployments/digits-mlp.yaml: the health endpoints answer,
    `tandem deployments` lists it, `tandem promote` moves it."""
    digits = register_digits(cluster, (SHIPPED_MODEL,))
    control.deployments(cluster)  # Serve starts on this cluster's port, not the file's 24003
    serve_cli = str(Path(sys.executable).parent / "serve")
    deployed = subprocess.run(
        [serve_cli, "deploy", str(REPO / "deployments" / f"{SHIPPED_MODEL}.yaml")],
        capture_output=True,
        text=True,
        env=ray_cli_env(),
        timeout=120,
    )
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    base = control.endpoint(cluster)
    try:
        wait_for(lambda: _ready(f"{base}/v2/health/ready"), 180, "the serve-deployed app")
        listed = tandem("deployments")
        assert listed.returncode == 0, listed.stderr
        assert SHIPPED_MODEL in listed.stdout and "RUNNING" in listed.stdout
        rows = digits.x_val[:8]
        url = f"{base}/v2/models/{SHIPPED_MODEL}/infer"
        answer = httpx.post(url, json=infer_body(rows), timeout=30)
        assert labels_of(answer) == list(digits.offline[1][:8])
        promoted = tandem("promote", SHIPPED_MODEL, "2")
        assert promoted.returncode == 0, promoted.stderr
        (found,) = [d for d in control.deployments(cluster) if d.spec.model == SHIPPED_MODEL]
        assert found.live.default == 2
        answer = httpx.post(url, json=infer_body(rows), timeout=30)
        assert answer.json()["model_version"] == "2"
        assert labels_of(answer) == list(digits.offline[2][:8])
    finally:
        control.undeploy(SHIPPED_MODEL, cluster)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_jobs_api_refuses_requests_without_the_token(cluster: Settings) -> None:
    import httpx

    state = local.ClusterState.read(cluster)
    assert state is not None
    assert state.dashboard_url.startswith("http://127.0.0.1:")
    response = httpx.get(f"{state.dashboard_url}/api/jobs/", timeout=10)
    assert response.status_code in (401, 403)
