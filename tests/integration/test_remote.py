"""The whole life cycle against a remote cluster, named only by RAY_ADDRESS and its token:
train → register → promote → deploy → predict → batch, through the ``tandem`` CLI and
the SDK in fresh processes, against cluster.yaml's node types under Ray's autoscaler
(none of the embedded cluster's code starts or finds it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from factories import REPO, digits_job_spec
from multinode import (
    AutoscalingCluster,
    FakeSizes,
    clean_env,
    free_port,
    node_pool,
    start_autoscaling_cluster,
)
from tandem.settings import SERVE_HTTP_OFFSET

TANDEM = str(Path(sys.executable).parent / "tandem")
pytestmark = pytest.mark.own_cluster
MODEL = "remote-mlp"


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AutoscalingCluster]:
    """Two CPUs per pool node: a train worker and its Ray Data reads fit one node."""
    workdir = tmp_path_factory.mktemp("remote")
    with start_autoscaling_cluster(workdir, FakeSizes(node_cpus=2)) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def env(remote: AutoscalingCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A user's shell: the cluster's address and token, shared storage, a laptop's home."""
    home = tmp_path_factory.mktemp("laptop")
    # Serve's port is TANDEM_PORT_BASE + 3 on every cluster: pick a base whose +3 is free.
    base = free_port() - SERVE_HTTP_OFFSET
    return clean_env(
        **remote.client_env(),
        TANDEM_HOME=str(home),
        TANDEM_PORT_BASE=str(base),
        TANDEM_CLUSTER_FILE=str(REPO / "cluster.yaml"),
    )


def tandem(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [TANDEM, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    assert done.returncode == 0, f"tandem {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_life_cycle_through_ray_address(
    remote: AutoscalingCluster, env: dict[str, str], tmp_path: Path
) -> None:
    assert "RAY_ADDRESS" in env and not env["RAY_ADDRESS"].startswith("http")
    home = Path(env["TANDEM_HOME"])
    tandem(env, "data", "digits")
    spec = digits_job_spec(MODEL, epochs=2) | {"scaling": {"num_workers": 1, "cpus_per_worker": 1}}
    spec_path = tmp_path / "remote-mlp.yaml"
    spec_path.write_text(yaml.safe_dump(spec))

    trained = tandem(env, "train", str(spec_path))
    assert f"registered {MODEL} version 1" in trained, trained
    # The registry is where TANDEM_STORAGE says, not under the laptop's TANDEM_HOME.
    assert (remote.storage / "registry" / MODEL).is_dir()
    assert not (home / "storage").exists()
    assert MODEL in tandem(env, "models")

    tandem(env, "promote", MODEL, "1")
    deployment = tmp_path / "deploy.yaml"
    deployment.write_text(yaml.safe_dump({"model": MODEL, "cpus_per_replica": 0.5}))
    deployed = tandem(env, "deploy", str(deployment))
    port = int(env["TANDEM_PORT_BASE"]) + SERVE_HTTP_OFFSET
    endpoint = f"http://127.0.0.1:{port}"
    assert f"{endpoint}/v2/models/{MODEL}" in deployed, deployed

    validation = pd.read_parquet(home / "data" / "digits" / "validation.parquet")
    rows = tmp_path / "rows.csv"
    validation.drop(columns=["label"]).head(5).to_csv(rows, index=False)
    predicted = json.loads(tandem(env, "predict", MODEL, "--input", str(rows), "--json"))
    assert len(predicted["label"]) == 5

    sdk = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, tandem, pandas as pd, sys\n"
            "client = tandem.Client()\n"
            "rows = pd.read_parquet(sys.argv[1]).drop(columns=['label']).head(5)\n"
            "print(json.dumps({'endpoint': client.endpoint,\n"
            "    'label': client.predict(sys.argv[2], rows)['label'].tolist()}))",
            str(home / "data" / "digits" / "validation.parquet"),
            MODEL,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sdk.returncode == 0, sdk.stderr
    answer = json.loads(sdk.stdout)
    assert answer["endpoint"] == endpoint
    assert answer["label"] == predicted["label"]

    out = tmp_path / "scored"
    tandem(
        env,
        "batch-predict",
        f"{MODEL}:production",
        str(home / "data" / "digits" / "validation.parquet"),
        str(out),
    )
    scored = pd.read_parquet(out)
    assert len(scored) == len(validation)

    status = json.loads(tandem(env, "status", "--json"))
    pools = {node["pool"] for node in status["nodes"]}
    assert {"head", "train", "serve", "batch"} <= pools, pools
    assert {node_pool(n) for n in remote.alive_nodes()} >= {"train", "serve"}
    tandem(env, "undeploy", MODEL)
