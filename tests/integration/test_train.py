"""Training end to end on a real embedded cluster: Ray's job CLI, a killed worker, resume.

The three jobs run in the background (tests/train_runs.py, started by tests/conftest.py
while the modules that train nothing run); these tests check what they did."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tandem.cluster import jobs
from tandem.data import write_digits
from tandem.data.digits import FEATURES
from tandem.registry.store import Registry
from tandem.settings import Settings
from train_runs import BY_RAY_CLI, RESUMED, Interrupted, Resumed, TrainRuns, job_spec

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def digits(cluster: Settings) -> Settings:
    write_digits(str(cluster.home / "data" / "digits"))
    return cluster


def epochs_trained(logs: str) -> Counter[int]:
    """How often each epoch was trained: attempts are split at each resume line."""
    counts: Counter[int] = Counter()
    for attempt in re.split(RESUMED, logs):
        counts.update({int(e) for e in re.findall(r"epoch (\d+)/\d+ train_loss", attempt)})
    return counts


def test_ray_job_submit_trains_and_registers_a_complete_version(
    digits: Settings, train_runs: TrainRuns
) -> None:
    result: subprocess.CompletedProcess[str] = train_runs.by_ray_cli.result()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"epoch 12/12 .*samples/s=\d+ data_wait=[\d.]+%", result.stdout)
    registry = Registry.default(digits)
    manifest, weights = registry.load_weights(BY_RAY_CLI, "latest")
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


def test_killed_worker_resumes_from_its_last_checkpoint(
    digits: Settings, train_runs: TrainRuns
) -> None:
    interrupted: Interrupted = train_runs.interrupted.result()
    logs = interrupted.logs
    assert re.search(RESUMED, logs), logs[-3000:]
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


def test_resume_continues_the_last_unfinished_run(digits: Settings, train_runs: TrainRuns) -> None:
    resumed: Resumed = train_runs.resumed.result()
    logs = resumed.logs
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
    result = subprocess.run(
        [str(BIN / "tandem"), "train", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "dataset.features: column 'pixel_99' is not in the Parquet schema" in result.stderr
    assert not [job for job in jobs.list_jobs(digits) if '"digits-bad"' in job.entrypoint]
