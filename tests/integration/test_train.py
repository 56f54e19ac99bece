"""Training end to end on a real embedded cluster: Ray's job CLI, a killed worker, resume."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from ray.util import state as ray_state

from serving import ray_cli_env
from tandem.cluster import jobs, local
from tandem.data import write_digits
from tandem.data.digits import FEATURES
from tandem.registry.store import Registry
from tandem.settings import Settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def job_spec(name: str, **train: object) -> dict[str, object]:
    return {
        "name": name,
        "dataset": {
            "train": "data/digits/train.parquet",  # relative: under TANDEM_HOME
            "validation": "data/digits/validation.parquet",
            "features": FEATURES,
            "label": "label",
        },
        "task": "classification",
        "model": {"factory": "tandem.models:mlp", "kwargs": {"hidden": [128, 64]}},
        "train": {
            "epochs": 12,
            "batch_size": 64,
            "lr": 0.003,
            "optimizer": "adam",
            "seed": 0,
            **train,
        },
        "scaling": {"num_workers": 2, "use_gpu": False, "cpus_per_worker": 1},
        "checkpoint": {"every_epochs": 1, "keep": 3},
        "failure": {"max_failures": 3},
    }


@pytest.fixture(scope="module")
def digits(cluster: Settings) -> Settings:
    write_digits(str(cluster.home / "data" / "digits"))
    return cluster


def epochs_trained(logs: str) -> Counter[int]:
    """How often each epoch was trained: attempts are split at each resume line."""
    counts: Counter[int] = Counter()
    for attempt in re.split(r"resumed from the checkpoint of epoch \d+", logs):
        counts.update({int(e) for e in re.findall(r"epoch (\d+)/\d+ train_loss", attempt)})
    return counts


def test_ray_job_submit_trains_and_registers_a_complete_version(
    digits: Settings, tmp_path: Path
) -> None:
    spec_path = tmp_path / "digits-mlp.yaml"
    spec_path.write_text(yaml.safe_dump(job_spec("digits-mlp")))
    result = subprocess.run(
        [
            str(BIN / "ray"),
            "job",
            "submit",
            "--working-dir",
            str(REPO),
            "--",
            "python",
            "jobs/train.py",
            str(spec_path),
        ],
        capture_output=True,
        text=True,
        env=ray_cli_env(),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"epoch 12/12 .*samples/s=\d+ data_wait=[\d.]+%", result.stdout)
    registry = Registry.default(digits)
    manifest, weights = registry.load_weights("digits-mlp", "latest")
    assert manifest.metrics["val_accuracy"] >= 0.95
    assert manifest.classes == list(range(10))
    [tabular] = manifest.inputs
    assert (tabular.name, tabular.kind, tabular.features) == ("input", "tabular", FEATURES)
    assert tabular.mean is not None and len(tabular.mean) == 64
    assert len(tabular.example) == 64 and manifest.weights.sha256 and manifest.code is None
    lineage = manifest.lineage
    assert lineage.submission_id and lineage.submission_id.startswith("raysubmit_")
    assert [d.uri for d in lineage.datasets] == [
        str(digits.home / "data/digits/train.parquet"),
        str(digits.home / "data/digits/validation.parquet"),
    ]
    assert all(len(d.fingerprint) == 64 for d in lineage.datasets)
    assert lineage.ray_version and lineage.torch_version and len(lineage.spec_sha256) == 64
    assert set(weights) and all(t.dtype.is_floating_point for t in weights.values())


def train_workers(settings: Settings) -> list[int]:
    state = local.ClusterState.read(settings)
    assert state is not None
    actors = ray_state.list_actors(
        address=state.gcs_address,
        filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")],
    )
    return [a.pid for a in actors if a.pid]


def submit(settings: Settings, spec: dict[str, object], *flags: str) -> jobs.JobHandle:
    command = f"python -m tandem.train.main --spec-json '{json.dumps(spec)}' {' '.join(flags)}"
    return jobs.submit(settings, command)


def wait_for_log(handle: jobs.JobHandle, pattern: str, timeout_s: float = 600) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        logs = handle.logs()
        if re.search(pattern, logs):
            return logs
        assert handle.status() not in ("FAILED", "STOPPED", "SUCCEEDED"), logs[-3000:]
        time.sleep(1)
    raise AssertionError(f"{pattern!r} never appeared in the job logs")


@dataclass(frozen=True)
class Interrupted:
    """A run whose worker was killed (the worker group resumed it) and whose job was then
    stopped: ``logs`` are the stopped job's."""

    spec: dict[str, object]
    logs: str


@pytest.fixture(scope="module")
def interrupted(digits: Settings) -> Interrupted:
    """One run for both kinds of resume: a train worker is SIGKILLed at epoch 4, and once
    the worker group has resumed and trained on, the job is stopped; the resume test then
    finishes the run with ``--resume`` (one run and two jobs, not three jobs)."""
    spec = job_spec("digits-interrupted", epochs=40)
    handle = submit(digits, spec)
    wait_for_log(handle, r"epoch 4/40 train_loss")
    victims = train_workers(digits)
    assert len(victims) == 2
    os.kill(victims[-1], signal.SIGKILL)
    # An epoch trained after the resume: the workers came back and went on.
    wait_for_log(handle, r"resumed from the checkpoint of epoch \d+[\s\S]*epoch \d+/40 train_loss")
    handle.stop()
    with pytest.raises(Exception, match="STOPPED"):
        handle.wait(timeout_s=120)
    return Interrupted(spec, handle.logs())


def test_killed_worker_resumes_from_its_last_checkpoint(
    digits: Settings, interrupted: Interrupted
) -> None:
    logs = interrupted.logs
    assert re.search(r"resumed from the checkpoint of epoch \d+", logs), logs[-3000:]
    trained = epochs_trained(logs)
    assert set(trained) == set(range(1, max(trained) + 1)) and max(trained) >= 5, trained
    assert max(trained.values()) <= 2, trained
    redone = sum(count - 1 for count in trained.values())
    rows = pq.read_table(digits.home / "data/digits/train.parquet", columns=["label"]).num_rows
    steps_per_epoch = math.ceil(rows / 2 / 64)  # per worker: 2 workers, batch_size 64
    print(
        f"\ntrain worker kill: resumed; {redone} finished epoch(s) trained again, steps lost "
        f"<= {(redone + 1) * steps_per_epoch} of {max(trained) * steps_per_epoch} per worker "
        "(the interrupted epoch included)"
    )


def test_resume_continues_the_last_unfinished_run(
    digits: Settings, interrupted: Interrupted
) -> None:
    spec = interrupted.spec
    # Fewer epochs than the stopped job's 40, more than it can reach before the stop lands.
    resumed = submit(digits, {**spec, "train": {**spec["train"], "epochs": 16}}, "--resume")  # type: ignore[dict-item]
    resumed.wait(timeout_s=900)
    logs = resumed.logs()
    # The stop can land between an epoch's log line and its checkpoint commit,
    # so the run resumes from the last committed checkpoint, not the last line.
    match = re.search(r"resumed from the checkpoint of epoch (\d+)", logs)
    assert match and int(match.group(1)) >= 1, logs[-3000:]
    assert "epoch 1/16 train_loss" not in logs and "epoch 16/16 train_loss" in logs
    manifest, _ = Registry.default(digits).load_weights("digits-interrupted", "latest")
    assert manifest.lineage.submission_id == resumed.submission_id
    assert manifest.metrics["val_accuracy"] > 0.9


def test_bad_feature_column_fails_before_submission(digits: Settings, tmp_path: Path) -> None:
    spec = job_spec("digits-bad")
    spec["dataset"]["features"] = [*FEATURES[:3], "pixel_99"]  # type: ignore[index]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    before = len(jobs.list_jobs(digits))
    result = subprocess.run(
        [str(BIN / "tandem"), "train", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "dataset.features: column 'pixel_99' is not in the Parquet schema" in result.stderr
    assert len(jobs.list_jobs(digits)) == before
