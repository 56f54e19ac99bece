"""GPU options in specs, the batch command line, the SDK and the batch pool check (no Ray)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner

from tandem.batch.config import BatchPredictSpec
from tandem.batch.main import main as batch_main
from tandem.batch.output import BatchResult
from tandem.cli import app
from tandem.cluster.status import check_gpus
from tandem.errors import SpecError
from tandem.sdk import Client
from tandem.specs import DeploymentSpec, load

BATCH = {"model": "m", "input": "/in", "output": "/out"}


def problems(cls: type[Any], fields: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(cls, fields)
    return info.value.problems


def test_gpu_deployment_fields_validate() -> None:
    spec = load(DeploymentSpec, {"model": "m", "gpus_per_replica": 0.5, "precision": "bf16"})
    assert (spec.gpus_per_replica, spec.precision) == (0.5, "bf16")
    assert load(DeploymentSpec, {"model": "m"}).precision == "fp32"
    assert load(DeploymentSpec, {"model": "m", "gpus_per_replica": 1}).precision == "fp32"


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_without_a_gpu_names_both_fields(precision: str) -> None:
    (problem,) = problems(DeploymentSpec, {"model": "m", "precision": precision})
    assert problem.startswith("precision: ")
    assert "gpus_per_replica > 0" in problem and "precision: fp32" in problem


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"precision": "fp64"}, "precision"),
        ({"gpus_per_replica": -1}, "gpus_per_replica"),
        ({"gpus_per_replica": 17}, "gpus_per_replica"),
    ],
)
def test_bad_gpu_deployment_values_name_their_field(patch: dict[str, Any], field: str) -> None:
    found = problems(DeploymentSpec, {"model": "m", **patch})
    assert any(p.startswith(field + ":") for p in found), found


def test_gpu_batch_fields_validate() -> None:
    spec = load(BatchPredictSpec, {**BATCH, "gpus_per_actor": 1, "precision": "fp16"})
    assert (spec.gpus_per_actor, spec.precision) == (1, "fp16")
    default = load(BatchPredictSpec, BATCH)
    assert (default.gpus_per_actor, default.precision, default.batch_size) == (0, "fp32", 4096)


@pytest.mark.parametrize(
    ("patch", "field", "says"),
    [
        ({"precision": "bf16"}, "precision", "gpus_per_actor > 0"),
        ({"gpus_per_actor": -0.5}, "gpus_per_actor", "greater than or equal to 0"),
        ({"precision": "int8", "gpus_per_actor": 1}, "precision", "'fp32', 'fp16' or 'bf16'"),
    ],
)
def test_bad_gpu_batch_values_name_their_field(
    patch: dict[str, Any], field: str, says: str
) -> None:
    found = problems(BatchPredictSpec, {**BATCH, **patch})
    assert any(p.startswith(field + ":") and says in p for p in found), found


@pytest.fixture
def job_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch job's entry point, minus lowering this test process's priority."""
    monkeypatch.setattr("tandem.batch.main.run_at_throughput_priority", lambda: None)


@pytest.mark.usefixtures("job_entry")
def test_jobs_entry_takes_gpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    scored: list[BatchPredictSpec] = []

    def run(spec: BatchPredictSpec, settings: object, progress: object) -> BatchResult:
        scored.append(spec)
        return BatchResult(
            model="m", version=3, requested=3, rows=1, seconds=1.0, output="/out/part.parquet"
        )

    monkeypatch.setattr("tandem.batch.main.run", run)
    argv = ["m:3", "/in", "/out", "--gpus-per-actor", "1", "--precision", "bf16"]
    assert batch_main([*argv, "--batch-size", "8", "--max-actors", "1"]) == 0
    (spec,) = scored
    assert (spec.version, spec.gpus_per_actor, spec.precision) == (3, 1.0, "bf16")
    assert (spec.batch_size, spec.max_actors, spec.id_column) == (8, 1, None)


@pytest.mark.usefixtures("job_entry")
def test_jobs_entry_refuses_half_precision_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert batch_main(["m", "/in", "/out", "--precision", "fp16"]) == 1
    error = capsys.readouterr().err
    assert "precision: " in error and "fp16 runs only on a GPU" in error


@dataclass
class FakeJob:
    submission_id: str = "raysubmit_test"


def test_batch_predict_command_passes_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    submitted: list[BatchPredictSpec] = []

    class FakeClient:
        def submit_batch(self, spec: BatchPredictSpec) -> FakeJob:
            submitted.append(spec)
            return FakeJob()

        def close(self) -> None:
            """The CLI closes its client when the command ends; this one holds nothing."""

    monkeypatch.setattr("tandem.sdk.Client", FakeClient)
    flags = ["--gpus-per-actor", "1", "--precision", "bf16", "--no-follow"]
    result = CliRunner().invoke(app, ["batch-predict", "m:2", "/in", "/out", *flags])
    assert result.exit_code == 0, result.output
    (spec,) = submitted
    assert (spec.gpus_per_actor, spec.precision, spec.version) == (1.0, "bf16", 2)


def test_batch_predict_command_refuses_half_precision_without_gpus() -> None:
    result = CliRunner().invoke(app, ["batch-predict", "m", "/in", "/out", "--precision", "fp16"])
    assert result.exit_code == 1
    assert "gpus_per_actor > 0" in result.output


def test_sdk_batch_predict_passes_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    submitted: list[BatchPredictSpec] = []

    def submit_batch(self: Client, spec: BatchPredictSpec, wait: bool = False) -> FakeJob:
        submitted.append(spec)
        return FakeJob()

    monkeypatch.setattr(Client, "submit_batch", submit_batch)
    Client().batch_predict("m", "/in", "/out", gpus_per_actor=0.5, precision="fp16", wait=False)
    (spec,) = submitted
    assert (spec.gpus_per_actor, spec.precision) == (0.5, "fp16")


def test_gpu_actors_the_batch_pool_cannot_place_are_refused() -> None:
    check_gpus("batch", available=1, wanted=1, field="gpus_per_actor")
    check_gpus("batch", available=2, wanted=0.5, field="gpus_per_actor")
    with pytest.raises(SpecError) as info:
        check_gpus("batch", available=0, wanted=1, field="gpus_per_actor")
    (problem,) = info.value.problems
    assert problem.startswith("gpus_per_actor: ")
    assert "cluster.yaml" in problem and "batch pool" in problem
