"""Runs you can look at: status, spec and per-epoch files, read back, listed, plotted."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factories import loop_config
from tandem.cli import app
from tandem.errors import NotFoundError
from tandem.train.curves import CHARTS, curves_html, write_curves
from tandem.train.gauges import GAUGES, TrainGauges
from tandem.train.history import RunRecord, RunSummary, list_runs, load_run
from tandem.train.loop import EpochProgress
from tandem.train.runs import RunStore

runner = CliRunner()
SPEC = {
    "name": "digits",
    "dataset": {"train": "/data/digits/train.parquet", "validation": None, "label": "label"},
    "model": {"factory": "tandem.models:mlp", "kwargs": {"hidden": [32]}},
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.001, "optimizer": "adam", "seed": 7},
    "scaling": {"num_workers": 2, "use_gpu": False},
}


def epoch_row(epoch: int, loss: float, metric: str = "val_accuracy") -> dict[str, float]:
    return {
        "epoch": epoch,
        "train_loss": loss,
        "val_loss": loss * 1.1,
        metric: 0.5 + epoch / 10,
        "samples_per_s": 1000.0 + epoch,
        "data_wait_fraction": 0.05,
        "time": 1_700_000_000.0 + epoch,
    }


def finished_run(storage: str, job: str, run_id: str, started: str, epochs: int = 3) -> None:
    runs = RunStore.open(storage, job)
    runs.write_spec(run_id, {**SPEC, "name": job})
    runs.started(run_id, job, submission_id="raysubmit_1")
    runs.set_status(run_id, "running", started_at=started, attempt_started_at=started)
    for epoch in range(epochs):
        runs.record_epoch(run_id, epoch_row(epoch, 1.0 / (epoch + 1)))
    runs.ended(run_id, "finished", version=3, metrics={"epoch": 2.0, "val_accuracy": 0.7})


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "storage")
    return f"memory://tandem-runs-{uuid.uuid4().hex}/storage"


def test_runs_round_trip_through_storage(storage: str) -> None:
    finished_run(storage, "digits", "digits-2", "2025-01-02T10:00:00+00:00")
    finished_run(storage, "digits", "digits-1", "2025-01-01T10:00:00+00:00")
    failing = RunStore.open(storage, "iris")
    failing.started("iris-1", "iris", None)
    failing.set_status("iris-1", "running", started_at="2025-01-03T10:00:00+00:00")
    failing.record_epoch("iris-1", epoch_row(0, 2.0, "val_rmse"))
    failing.ended("iris-1", "failed", error=RuntimeError("worker died"))

    rows = list_runs(storage)
    assert [r.run_id for r in rows] == ["digits-1", "digits-2", "iris-1"]  # newest last
    digits = rows[0]
    assert (digits.model, digits.status, digits.version, digits.epochs) == (
        "digits",
        "finished",
        3,
        3,
    )
    assert digits.metrics == {"epoch": 2.0, "val_accuracy": 0.7}  # the registered checkpoint's
    assert digits.submission_id == "raysubmit_1"
    assert digits.finished_at is not None and digits.duration_s is not None
    failed = rows[2]
    assert failed.status == "failed" and failed.error == "RuntimeError: worker died"
    assert failed.metrics["val_rmse"] == pytest.approx(0.5)  # no version: the last epoch's
    assert "time" not in failed.metrics
    assert [r.run_id for r in list_runs(storage, "iris")] == ["iris-1"]
    assert list_runs(storage, "nothing") == []

    record = load_run(storage, "digits-2")
    assert record.spec == SPEC and record.summary.run_id == "digits-2"
    assert [row["epoch"] for row in record.epochs] == [0, 1, 2]
    assert record.epochs[1]["train_loss"] == pytest.approx(0.5)
    assert RunRecord.model_validate_json(record.model_dump_json()) == record


def test_an_empty_storage_has_no_runs(tmp_path: Path) -> None:
    assert list_runs(str(tmp_path / "nothing-here")) == []


def test_an_unknown_run_names_the_known_ones(tmp_path: Path) -> None:
    finished_run(str(tmp_path), "digits", "digits-1", "2025-01-01T10:00:00+00:00")
    with pytest.raises(NotFoundError, match=r"no run 'digits-9'.*newest runs: digits-1"):
        load_run(str(tmp_path), "digits-9")


def test_a_resumed_run_replaces_the_epochs_it_redoes(tmp_path: Path) -> None:
    runs = RunStore.open(str(tmp_path), "job")
    for epoch in range(3):
        runs.record_epoch("job-1", epoch_row(epoch, 1.0))
    # Resumed from the checkpoint after epoch 0: epochs 1 and 2 run again.
    runs.record_epoch("job-1", epoch_row(1, 0.25))
    assert [(r["epoch"], r["train_loss"]) for r in runs.epochs("job-1")] == [(0, 1.0), (1, 0.25)]
    runs.record_epoch("job-1", epoch_row(2, 0.125))
    assert [r["epoch"] for r in runs.epochs("job-1")] == [0, 1, 2]


def test_a_resumed_run_keeps_its_start_and_sums_its_attempts(tmp_path: Path) -> None:
    runs = RunStore.open(str(tmp_path), "job")
    runs.started("job-1", "job", None)
    runs.set_status("job-1", "running", attempt_started_at="2025-01-01T10:00:00+00:00")
    runs.set_status("job-1", "running", started_at="2025-01-01T10:00:00+00:00")
    runs.ended("job-1", "failed", error=KeyboardInterrupt())
    first = runs.status("job-1")
    runs.started("job-1", "job", None)
    resumed = runs.status("job-1")
    assert resumed["started_at"] == "2025-01-01T10:00:00+00:00"
    assert resumed["error"] is None and resumed["finished_at"] is None
    runs.ended("job-1", "finished", version=1, metrics={"val_accuracy": 0.9})
    done = runs.status("job-1")
    assert done["duration_s"] >= first["duration_s"] > 0
    assert done["version"] == 1 and done["status"] == "finished"
    assert RunSummary.model_validate({**done, "model": "job"}).duration_s == done["duration_s"]


def test_status_files_from_before_this_release_still_list(tmp_path: Path) -> None:
    runs = RunStore.open(str(tmp_path), "old")
    runs.fs.pipe_file(
        f"{runs.root}/old-1.status.json",
        json.dumps(
            {"run_id": "old-1", "status": "finished", "updated": 1.0, "submission_id": None}
        ).encode(),
    )
    [row] = list_runs(str(tmp_path))
    assert (row.model, row.started_at, row.epochs, row.metrics) == ("old", None, 0, {})
    assert load_run(str(tmp_path), "old-1").spec is None


def record(run_id: str, metric: str, epochs: int) -> RunRecord:
    summary = RunSummary(run_id=run_id, model="m<x>", status="finished", epochs=epochs)
    rows = [epoch_row(e, 1.0 / (e + 1), metric) for e in range(epochs)]
    return RunRecord(summary=summary, spec=None, epochs=rows)


def charts(page: str) -> dict[str, str]:
    """Chart title → its SVG."""
    found = re.findall(r'<svg .*?<text class="title"[^>]*>([^<]*)</text>(.*?)</svg>', page, re.S)
    return dict(found)


def test_curves_draw_one_line_per_run_in_every_chart(tmp_path: Path) -> None:
    runs = [record("run-a", "val_accuracy", 3), record("run-b", "val_accuracy", 1)]
    path = write_curves(runs, tmp_path / "curves.html")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    drawn = charts(page)
    titles = dict(CHARTS)
    assert set(drawn) == {titles[k] for k in ("train_loss", "val_loss", "val_accuracy")} | {
        titles["samples_per_s"]
    }
    for svg in drawn.values():
        assert svg.count("<polyline") == 2
        assert "<title>run-a</title>" in svg and "<title>run-b</title>" in svg
    assert page.count("run-a") == 1 + len(drawn)  # legend + one line per chart
    assert "m&lt;x&gt;" in page and "m<x>" not in page  # escaped


def test_curves_of_mixed_tasks_draw_each_metric_for_its_runs() -> None:
    drawn = charts(curves_html([record("c", "val_accuracy", 2), record("r", "val_rmse", 2)]))
    titles = dict(CHARTS)
    assert drawn[titles["val_accuracy"]].count("<polyline") == 1
    assert drawn[titles["val_rmse"]].count("<polyline") == 1
    assert drawn[titles["train_loss"]].count("<polyline") == 2


def test_rank_zero_records_each_epoch_and_sets_gauges(tmp_path: Path) -> None:
    runs = RunStore.open(str(tmp_path), "digits")
    cfg = loop_config(kwargs={}, name="digits", run_id="digits-1", runs_uri=runs.uri)
    progress = EpochProgress(cfg)  # Ray's gauges are no-ops without a cluster
    metrics = {k: v for k, v in epoch_row(0, 0.5).items() if k != "time"}
    progress.publish(0, {**metrics, "epoch": 0.0})
    [row] = runs.epochs("digits-1")
    assert row["epoch"] == 0 and row["train_loss"] == 0.5 and row["time"] > 0


def test_gauge_names_follow_prometheus_conventions() -> None:
    names = [name for name, _ in GAUGES.values()]
    assert all(re.fullmatch(r"tandem_train_[a-z_]+", n) for n in names)
    assert {
        "tandem_train_epoch",
        "tandem_train_samples_per_second",
        "tandem_train_data_wait_ratio",
        "tandem_train_loss",
        "tandem_train_val_loss",
    } <= set(names)
    TrainGauges("digits", "digits-1").set({"epoch": 0.0, "train_loss": 1.0})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path))
    storage = str(tmp_path / "storage")
    finished_run(storage, "digits", "digits-1", "2025-01-01T10:00:00+00:00")
    finished_run(storage, "digits", "digits-2", "2025-01-02T10:00:00+00:00", epochs=2)
    return storage


def test_tandem_runs_lists_shows_and_compares(home: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["runs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "digits-1" in result.stdout and "val_accuracy 0.7" in result.stdout

    result = runner.invoke(app, ["runs", "digits", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["run_id"] for r in json.loads(result.stdout)] == ["digits-1", "digits-2"]
    assert json.loads(runner.invoke(app, ["runs", "--json", "iris"]).stdout) == []

    result = runner.invoke(app, ["runs", "show", "digits-2"])
    assert result.exit_code == 0, result.output
    assert "finished (v3)" in result.stdout and "seed       7" in result.stdout
    assert "samples/s" in result.stdout  # the per-epoch table

    shown = json.loads(runner.invoke(app, ["runs", "show", "digits-2", "--json"]).stdout)
    assert shown["spec"] == SPEC and len(shown["epochs"]) == 2

    plot = tmp_path / "curves.html"
    result = runner.invoke(
        app,
        ["runs", "compare", "digits-1", "digits-2", "--plot", str(plot)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "val_accuracy" in result.stdout and plot.read_text().count("<polyline") == 8

    result = runner.invoke(app, ["runs", "show", "digits-9"])
    assert result.exit_code == 1 and "no run 'digits-9'" in result.output

    result = runner.invoke(app, ["runs", "--help"])
    assert result.exit_code == 0 and "show" in result.stdout and "compare" in result.stdout
