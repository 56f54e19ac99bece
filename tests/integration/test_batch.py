"""Batch inference on a real embedded cluster: same answers as the live endpoint, row for row,
scored by actors in the batch pool."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import torch
from ray.util import state as ray_state

from tandem import Client
from tandem.cluster.local import ClusterState
from tandem.data import write_digits
from tandem.data.digits import FEATURES
from tandem.errors import SpecError
from tandem.models import build_model
from tandem.registry import Manifest, Registry, TargetSchema, external_manifest, tabular_input
from tandem.settings import Settings

MODEL = "batch-digits"
BIN = Path(sys.executable).parent


def fitted_manifest(train: pd.DataFrame) -> tuple[Manifest, dict[str, torch.Tensor]]:
    """A small MLP fitted in this process: batch scoring, not training, is under test."""
    x = train[FEATURES].to_numpy(np.float32)
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    torch.manual_seed(0)
    flat = tabular_input(FEATURES, [0.0] * len(FEATURES), [1.0] * len(FEATURES), [])
    model = build_model("tandem.models:mlp", {"hidden": [32]}, [flat], 10)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs, targets = (
        torch.from_numpy((x - mean) / std),
        torch.from_numpy(train["label"].to_numpy()),
    )
    for _ in range(40):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimiser.step()
    manifest = external_manifest(
        MODEL,
        "tandem.models:mlp",
        {"hidden": [32]},
        [tabular_input(FEATURES, mean.tolist(), std.tolist(), x[0].tolist())],
        TargetSchema(classes=list(range(10))),
        run_name="in-test",
    )
    return manifest, model.state_dict()


@pytest.fixture(scope="module")
def client(cluster: Settings) -> Iterator[Client]:
    with Client() as client:
        yield client


@pytest.fixture(scope="module")
def inputs(cluster: Settings, client: Client) -> pd.DataFrame:
    """The validation split as three Parquet files with an ``image_id`` column; model deployed."""
    data = cluster.home / "data" / "digits"
    write_digits(str(data))
    Registry.default(client.settings).register(
        *fitted_manifest(pd.read_parquet(data / "train.parquet"))
    )
    validation = pd.read_parquet(data / "validation.parquet")
    validation.insert(0, "image_id", [f"img-{i:04d}" for i in range(len(validation))])
    folder = cluster.home / "data" / "to-score"
    folder.mkdir()
    for part, rows in enumerate(np.array_split(np.arange(len(validation)), 3)):
        validation.iloc[rows].to_parquet(folder / f"part-{part}.parquet", index=False)
    client.deploy(
        {"model": MODEL, "version": 1, "autoscaling": {"min_replicas": 1, "max_replicas": 1}}
    )
    return validation


def test_batch_predictions_equal_the_online_endpoint_row_for_row(
    client: Client, inputs: pd.DataFrame, cluster: Settings
) -> None:
    result = client.batch_predict(MODEL, "data/to-score", "predictions/sdk", version=1).wait()
    assert (result.model, result.version, result.rows) == (MODEL, 1, len(inputs))
    assert result.rows_per_s > 0
    scored = pd.read_parquet(result.output)
    assert scored["row"].tolist() == list(range(len(inputs)))
    online = client.predict(MODEL, inputs[FEATURES].to_numpy(np.float32))
    np.testing.assert_array_equal(scored["label"].to_numpy(), online["label"])
    probabilities = np.stack(scored["probabilities"].to_list())
    np.testing.assert_allclose(probabilities, online["probabilities"], atol=1e-6)


def test_scoring_actors_ran_in_the_batch_pool(
    client: Client, inputs: pd.DataFrame, cluster: Settings
) -> None:
    state = ClusterState.read(cluster)
    assert state is not None
    actors = [
        a
        for a in ray_state.list_actors(address=state.gcs_address, limit=10_000)
        if "ScoringActor" in a.class_name
    ]
    assert actors, "the batch job of the previous test left no scoring actors on record"
    pools = {n["NodeID"]: n["Resources"] for n in ray.nodes()}
    assert all("pool_batch" in pools[a.node_id] for a in actors)


def test_cli_carries_a_named_id_column_and_prints_rows_per_second(
    inputs: pd.DataFrame, cluster: Settings
) -> None:
    output = cluster.home / "predictions" / "cli"
    done = subprocess.run(
        [
            str(BIN / "tandem"),
            "batch-predict",
            f"{MODEL}:1",
            str(cluster.home / "data" / "to-score"),
            str(output),
            "--id-column",
            "image_id",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{len(inputs):,} rows scored by {MODEL} v1 at" in done.stdout
    assert "rows/s" in done.stdout
    scored = pd.read_parquet(output)
    assert list(scored.columns) == ["image_id", "probabilities", "label"]
    assert scored["image_id"].tolist() == inputs["image_id"].tolist()


def test_a_missing_column_fails_before_submission(client: Client, inputs: pd.DataFrame) -> None:
    before = len(client.jobs())
    with pytest.raises(SpecError, match="'customer' is not in"):
        client.batch_predict(MODEL, "data/to-score", "predictions/bad", id_column="customer")
    assert len(client.jobs()) == before
