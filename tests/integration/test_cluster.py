"""The embedded cluster on a real Ray: pools are physical, auth is on, the CLI works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from tandem.cluster import local, pool_options
from tandem.settings import Settings

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]


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


def tandem(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "tandem"), *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        cwd=REPO,
    )


def test_status_lists_every_pool(cluster: Settings) -> None:
    result = tandem("status")
    assert result.returncode == 0, result.stderr
    for pool in ("head", "train", "serve", "batch"):
        assert pool in result.stdout


def test_env_lets_rays_own_job_cli_submit_with_the_token(cluster: Settings) -> None:
    exports = tandem("env").stdout
    env = os.environ.copy()
    for line in exports.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
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
        env=env,
        timeout=180,
    )
    assert job.returncode == 0, job.stderr[-2000:]
    assert "ok Linux" in job.stdout


def test_jobs_api_refuses_requests_without_the_token(cluster: Settings) -> None:
    import httpx

    state = local.ClusterState.read(cluster)
    assert state is not None
    assert state.dashboard_url.startswith("http://127.0.0.1:")
    response = httpx.get(f"{state.dashboard_url}/api/jobs/", timeout=10)
    assert response.status_code in (401, 403)
