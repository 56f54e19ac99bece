from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tandem.errors import SpecError
from tandem.specs import DeploymentSpec, TrainJobSpec, load
from tandem.specs.files import validate_file

REPO = Path(__file__).resolve().parents[2]

GOOD_JOB = {
    "name": "digits-mlp",
    "dataset": {"train": "memory://d/train", "features": ["f0", "f1"], "label": "label"},
    "task": "classification",
    "model": {"factory": "tandem.models:mlp", "kwargs": {"hidden": [8]}},
    "train": {"epochs": 2, "batch_size": 16, "lr": 0.01, "optimizer": "adam", "seed": 0},
    "scaling": {"num_workers": 2, "use_gpu": False, "cpus_per_worker": 1},
    "checkpoint": {"every_epochs": 1, "keep": 3},
    "failure": {"max_failures": 3},
    "storage": None,
}


def write(tmp_path: Path, data: object, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_job_spec_with_the_documented_keys_loads() -> None:
    spec = load(TrainJobSpec, GOOD_JOB)
    assert spec.scaling.num_workers == 2
    assert spec.model.kwargs == {"hidden": [8]}


def test_three_mistakes_are_all_reported_by_field(tmp_path: Path) -> None:
    bad = {**GOOD_JOB, "epochz": 3}
    bad["train"] = {**GOOD_JOB["train"], "batch_size": -4}
    bad["scaling"] = {**GOOD_JOB["scaling"], "num_workers": "two"}
    with pytest.raises(SpecError) as info:
        validate_file(write(tmp_path, bad))
    problems = info.value.problems
    assert len(problems) == 3
    assert any(p.startswith("epochz: unknown key") for p in problems)
    assert any(p.startswith("train.batch_size:") and "(got -4)" in p for p in problems)
    assert any(p.startswith("scaling.num_workers:") and "'two'" in p for p in problems)


def test_batch_larger_than_ongoing_requests_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        load(
            DeploymentSpec,
            {"model": "m", "batching": {"max_batch_size": 64}, "max_ongoing_requests": 16},
        )
    (problem,) = info.value.problems
    assert problem.startswith("max_ongoing_requests: ")
    assert "batching.max_batch_size (64)" in problem


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"autoscaling": {"min_replicas": 3, "max_replicas": 2}}, "autoscaling.max_replicas"),
        ({"cpus_per_replica": -1}, "cpus_per_replica"),
        ({"canary": {"version": 2, "weight": 120}}, "canary.weight"),
        ({"auth": {}}, "auth"),
        ({"model": "Bad Name"}, "model"),
    ],
)
def test_deployment_mistakes_name_their_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        load(DeploymentSpec, {"model": "m", **patch})
    assert any(p.startswith(field + ":") for p in info.value.problems), info.value.problems


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ndataset: [unclosed\n")
    with pytest.raises(SpecError) as info:
        validate_file(path)
    assert info.value.problems[0].startswith("line ")


def test_serve_config_args_are_checked_per_application(tmp_path: Path) -> None:
    config = {
        "applications": [
            {"name": "other", "import_path": "their.app:build", "args": {"anything": 1}},
            {
                "name": "a",
                "import_path": "tandem.serve.app:build",
                "args": {"model": "m", "max_queued_requests": 0},
            },
        ]
    }
    with pytest.raises(SpecError) as info:
        validate_file(write(tmp_path, config))
    # Only Tandem's model apps are Tandem's to check: the other app's args are its own.
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("applications.1.args.max_queued_requests:")


def test_every_shipped_spec_file_is_valid() -> None:
    files = [
        REPO / "cluster.yaml",
        *REPO.glob("jobs/specs/*.yaml"),
        *REPO.glob("jobs/deliveries/*.yaml"),
        *REPO.glob("deployments/*.yaml"),
    ]
    for path in files:
        validate_file(path)


def test_validate_refuses_a_pool_tandem_does_not_know(tmp_path: Path) -> None:
    """`tandem validate` catches a fourth pool (it used to fail only at `tandem up`)."""
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    config["available_node_types"]["extra"] = {
        "resources": {"CPU": 4, "pool_extra": 1000},
        "labels": {"tandem.io/pool": "extra"},
        "node_config": {"InstanceType": "c6i.xlarge"},
        "min_workers": 0,
        "max_workers": 1,
    }
    with pytest.raises(SpecError) as info:
        validate_file(write(tmp_path, config, "cluster.yaml"))
    assert info.value.problems == [
        "available_node_types.extra.resources: pool_extra names no pool; Tandem's pools are "
        "train, serve, batch (resources pool_train, pool_serve, pool_batch)"
    ]
