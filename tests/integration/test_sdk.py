"""Every SDK call against a real embedded cluster: one small model trained once, reused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from factories import digits_job_spec
from tandem import Client, Job
from tandem.data import write_digits
from tandem.data.digits import FEATURES
from tandem.errors import (
    JobFailedError,
    NotFoundError,
    RegistryError,
    RequestError,
    SpecError,
)
from tandem.models import ModelRunner
from tandem.registry import Manifest, Registry
from tandem.settings import Settings

MODEL = "sdk-digits"


def job_spec(name: str, epochs: int) -> dict[str, object]:
    """One worker: these jobs exercise the SDK; DDP is test_train's and test_models'."""
    return digits_job_spec(name, epochs) | {"scaling": {"num_workers": 1, "cpus_per_worker": 1}}


@pytest.fixture(scope="module")
def client(cluster: Settings) -> Iterator[Client]:
    write_digits(str(cluster.home / "data" / "digits"))
    with Client() as client:
        yield client


@pytest.fixture(scope="module")
def trained(client: Client) -> tuple[Job[Manifest], Manifest]:
    job = client.train(job_spec(MODEL, epochs=6))
    return job, job.wait()


@pytest.fixture(scope="module")
def validation(cluster: Settings) -> pd.DataFrame:
    return pd.read_parquet(cluster.home / "data" / "digits" / "validation.parquet")


def test_train_waits_for_the_registered_version(trained: tuple[Job[Manifest], Manifest]) -> None:
    job, manifest = trained
    assert job.status() == "SUCCEEDED"
    assert (manifest.name, manifest.version) == (MODEL, 1)
    assert manifest.lineage.submission_id == job.submission_id
    assert manifest.metrics["val_accuracy"] > 0.9
    assert "epoch 6/6 train_loss" in job.logs()
    assert "registered sdk-digits version 1" in "".join(job.logs(follow=True))


def test_submit_from_yaml_returns_a_handle_that_stops(
    client: Client, trained: tuple[Job[Manifest], Manifest], tmp_path: Path
) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(job_spec("sdk-long", epochs=500)))
    job = client.submit(path)
    deadline = time.monotonic() + 120
    while job.status() == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.stop()
    with pytest.raises(JobFailedError, match="STOPPED"):
        job.wait(timeout_s=120)
    listed = {j.submission_id: j.status for j in client.jobs()}
    assert listed[job.submission_id] == "STOPPED"
    assert listed[trained[0].submission_id] == "SUCCEEDED"
    assert client.job(job.submission_id).status() == "STOPPED"


def test_bad_specs_fail_before_anything_is_submitted(client: Client) -> None:
    before = len(client.jobs())
    spec = job_spec("sdk-bad", epochs=1)
    spec["dataset"]["features"] = ["f0", "pixel_99"]  # type: ignore[index]
    with pytest.raises(SpecError, match="pixel_99"):
        client.submit(spec)
    with pytest.raises(SpecError, match=r"train\.epochs"):
        client.submit({**job_spec("sdk-bad", epochs=1), "train": {"epochs": 0}})
    with pytest.raises(NotFoundError):
        client.job("raysubmit_nosuchjob")
    assert len(client.jobs()) == before


def test_registry_calls_return_manifests(
    client: Client, trained: tuple[Job[Manifest], Manifest]
) -> None:
    _, manifest = trained
    summary = next(m for m in client.models() if m.name == MODEL)
    assert (summary.latest, summary.versions) == (1, [1])
    assert client.versions(MODEL) == [manifest]
    assert client.get(MODEL) == client.get(MODEL, 1) == manifest
    with pytest.raises(NotFoundError, match="no-such-model"):
        client.get("no-such-model")
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        client.get(MODEL, "staging")


@pytest.fixture(scope="module")
def deployed(client: Client, trained: tuple[Job[Manifest], Manifest]) -> Iterator[int]:
    """v1 = production, v2 (same weights) registered; the model served with autoscaling 1..1."""
    registry = Registry.default(client.settings)
    first, weights = registry.load_weights(MODEL, 1)
    second = registry.register(first, weights).version
    move = client.promote(MODEL, 1)
    assert (move.version, move.previous) == (1, None)
    spec = {"model": MODEL, "autoscaling": {"min_replicas": 1, "max_replicas": 1}}
    (done,) = client.deploy(spec)
    assert done.default == 1
    yield second
    if any(d.model == MODEL for d in client.deployments()):
        client.undeploy(MODEL)


def test_predict_over_http_equals_the_model_runner(
    client: Client, deployed: int, validation: pd.DataFrame
) -> None:
    rows = validation[FEATURES].to_numpy(np.float32)
    expected = ModelRunner(*Registry.default(client.settings).load_weights(MODEL, 1)).predict(
        [rows]
    )
    served = client.predict(MODEL, rows)
    np.testing.assert_array_equal(served["label"], expected["label"])
    np.testing.assert_allclose(served["probabilities"], expected["probabilities"], atol=1e-6)
    shuffled = validation[list(reversed(FEATURES))].assign(note="ignored")
    from_frame = client.predict(MODEL, shuffled)
    np.testing.assert_array_equal(from_frame["label"], expected["label"])
    assert (served["label"] == validation["label"].to_numpy()).mean() > 0.9


def test_server_errors_arrive_typed_with_their_message(client: Client, deployed: int) -> None:
    with pytest.raises(RequestError) as error:
        client.predict(MODEL, np.zeros((2, 3), np.float32))
    assert error.value.status == 400 and "expected 64 features" in error.value.message
    with pytest.raises(RequestError) as missing:
        client.predict("not-deployed", np.zeros((1, 64), np.float32))
    assert missing.value.status == 404


def test_promote_and_rollback_move_the_alias_and_the_deployment(
    client: Client, deployed: int
) -> None:
    def served_default() -> int:
        (found,) = [d for d in client.deployments() if d.model == MODEL]
        return found.default

    # v2 holds v1's weights: the gate scores both on the same rows, and a tie keeps v1.
    with pytest.raises(RegistryError, match="a tie keeps the current version"):
        client.promote(MODEL, deployed, if_better="val_accuracy")
    assert client.aliases(MODEL)["production"] == 1
    promoted = client.promote(MODEL, deployed)
    assert (promoted.version, promoted.previous) == (deployed, 1)
    assert served_default() == deployed
    rolled = client.rollback(MODEL)
    assert (rolled.alias, rolled.version, rolled.previous) == ("production", 1, deployed)
    assert served_default() == 1


def test_undeploy_removes_the_endpoint(client: Client, deployed: int) -> None:
    client.undeploy(MODEL)
    assert all(d.model != MODEL for d in client.deployments())
    with pytest.raises(RequestError) as gone:
        client.predict(MODEL, np.zeros((1, 64), np.float32))
    assert gone.value.status == 404
    with pytest.raises(NotFoundError):
        client.undeploy(MODEL)
