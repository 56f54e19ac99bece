"""Fair evaluations without Ray: metrics, records, the gate, planning and the scoring
that the batch-pool task runs, on real runners of tiny registered models."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from factories import make_manifest, make_runner
from tandem.cli import app
from tandem.data import open_source
from tandem.errors import RegistryError, SpecError
from tandem.evaluation import Evaluation, find, load_all, save
from tandem.evaluation import metrics as m
from tandem.evaluation.records import KIND
from tandem.evaluation.scoring import (
    default_data,
    numpy_batch,
    plan,
    score_chunk,
    score_source,
    score_versions,
)
from tandem.models import build_model, load_runner
from tandem.registry import Manifest, Registry, TargetSchema
from tandem.sdk import Client
from tandem.serve import control
from tandem.serve.promotion import check_metric, gate
from tandem.settings import Settings

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


# --- metrics ---------------------------------------------------------------------------


def test_classification_metrics_on_hand_made_outputs() -> None:
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25], [0, 0, 1.0]])
    outputs = {"probabilities": probabilities, "label": np.array([3, 5, 3, 7])}
    labels = np.array([3, 5, 7, 9])  # 9: a class the model never saw
    assert m.accuracy(outputs, labels) == 0.5
    expected = -(math.log(0.7) + math.log(0.8) + math.log(0.25) + math.log(m.PROBABILITY_FLOOR))
    assert m.loss(outputs, labels, [3, 5, 7]) == pytest.approx(expected / 4)
    assert m.class_index(labels, [3, 5, 7]).tolist() == [0, 1, 2, -1]


def test_a_zero_probability_costs_a_bounded_loss() -> None:
    outputs = {"probabilities": np.array([[1.0, 0.0]]), "label": np.array([0])}
    assert m.loss(outputs, np.array([1]), [0, 1]) == pytest.approx(-math.log(1e-7))


def test_regression_metrics_average_vector_targets_per_row() -> None:
    prediction = np.array([[1.0, 2.0], [0.0, 0.0]], dtype=np.float32)
    # A fixed-size list column arrives as one array per row.
    labels = np.empty(2, dtype=object)
    labels[0], labels[1] = np.array([1.0, 4.0]), np.array([3.0, 1.0])
    outputs = {"prediction": prediction}
    # Row means of squared errors: (0 + 4) / 2 = 2 and (9 + 1) / 2 = 5.
    assert m.rmse(outputs, labels) == pytest.approx(math.sqrt(3.5))
    assert m.mae(outputs, labels) == pytest.approx(((0 + 2) / 2 + (3 + 1) / 2) / 2)
    scalar = {"prediction": np.array([1.0, 3.0])}
    assert m.rmse(scalar, np.array([2, 5])) == pytest.approx(math.sqrt((1 + 4) / 2))
    with pytest.raises(ValueError, match="predicts 2"):
        m.rmse(outputs, np.array([1.0, 2.0]))


def test_chunk_totals_add_up_to_the_metrics_of_all_rows() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=50)
    labels = rng.integers(0, 3, size=50)
    outputs = {"probabilities": probabilities, "label": probabilities.argmax(axis=1)}
    whole = m.chunk_totals("classification", outputs, labels, [0, 1, 2]).metrics()
    parts = m.Totals()
    for start in range(0, 50, 7):
        piece = {k: v[start : start + 7] for k, v in outputs.items()}
        parts += m.chunk_totals("classification", piece, labels[start : start + 7], [0, 1, 2])
    assert parts.rows == 50 and parts.metrics() == pytest.approx(whole)
    assert whole["accuracy"] == m.accuracy(outputs, labels)
    prediction = {"prediction": rng.normal(size=20)}
    targets = rng.normal(size=20)
    summed = m.chunk_totals("regression", prediction, targets, None).metrics()
    assert summed == pytest.approx(
        {"rmse": m.rmse(prediction, targets), "mae": m.mae(prediction, targets)}
    )


# --- records ---------------------------------------------------------------------------


def evaluation(
    scores: dict[int, dict[str, float]], key: str = "20250101T000000000000Z-aaaaaaaa"
) -> Evaluation:
    versions = list(scores)
    return Evaluation(
        id=key,
        model="iris-mlp",
        created_at="2025-01-01T00:00:00+00:00",
        candidate=versions[0],
        baseline=versions[1] if len(versions) > 1 else None,
        against="production" if len(versions) > 1 else None,
        data="/data/holdout.parquet",
        fingerprint="f" * 64,
        label="species",
        rows=100,
        scores={str(v): s for v, s in scores.items()},
    )


@pytest.mark.parametrize("root", ["tmp", "memory://evaluation-records"])
def test_evaluations_round_trip_and_find_takes_the_newest_scoring_both(
    tmp_path: Path, root: str
) -> None:
    registry = Registry(str(tmp_path) if root == "tmp" else root)
    older = evaluation({3: {"accuracy": 0.9}, 2: {"accuracy": 0.8}}, "20250101T000000000000Z-a")
    newer = evaluation({3: {"accuracy": 0.7}, 2: {"accuracy": 0.8}}, "20250102T000000000000Z-b")
    other = evaluation({4: {"accuracy": 0.9}, 2: {"accuracy": 0.8}}, "20250103T000000000000Z-c")
    for record in (newer, other, older):
        save(registry, record)
    assert load_all(registry, "iris-mlp") == [older, newer, other]
    assert find(registry, "iris-mlp", 3, 2) == newer
    assert find(registry, "iris-mlp", 2, 3) == newer  # either way round: same data, both scored
    assert find(registry, "iris-mlp", 4, None) == other
    assert find(registry, "iris-mlp", 4, 3) is None
    assert find(registry, "unknown", 3, 2) is None
    assert registry.versions("iris-mlp") == []  # records never create versions


def test_records_are_sorted_by_key_and_only_complete_files_count(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    registry.put_record("m", "deliveries", "b", b"2")
    registry.put_record("m", "deliveries", "a", b"1")
    registry.put_record("m", "deliveries", "a", b"1-again")  # same key: replaced
    folder = tmp_path / "registry" / "m" / "deliveries"
    (folder / "c.json.tmp-0123").write_bytes(b"half")  # a writer that crashed mid-way
    assert sorted(p.name for p in folder.iterdir()) == ["a.json", "b.json", "c.json.tmp-0123"]
    assert registry.records("m", "deliveries") == [b"1-again", b"2"]
    assert registry.records("m", "evaluations") == []


@pytest.mark.parametrize(
    ("kind", "key", "message"),
    [
        ("../versions", "k", "record kind"),
        ("versions", "k", "record kind"),
        ("Evaluations", "k", "record kind"),
        ("evaluations", "../../x", "record key"),
        ("evaluations", "a/b", "record key"),
        ("evaluations", ".hidden", "record key"),
        ("evaluations", "", "record key"),
    ],
)
def test_record_kinds_and_keys_cannot_leave_the_model_folder(
    tmp_path: Path, kind: str, key: str, message: str
) -> None:
    registry = Registry(str(tmp_path))
    with pytest.raises(SpecError, match=message):
        registry.put_record("m", kind, key, b"{}")
    assert not (tmp_path / "registry").exists()
    with pytest.raises(SpecError, match="model name"):
        registry.put_record("../m", "evaluations", "k", b"{}")


def test_a_corrupt_evaluation_is_refused(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    registry.put_record("m", KIND, "x", b'{"id": "x"}')
    with pytest.raises(RegistryError, match="not valid"):
        load_all(registry, "m")


# --- the gate --------------------------------------------------------------------------

SCORED = evaluation({3: {"accuracy": 0.9, "loss": 0.3}, 2: {"accuracy": 0.8, "loss": 0.3}})


def test_better_passes_and_says_by_how_much() -> None:
    decision = gate("accuracy", SCORED, 3, 2)
    assert decision.passed and "better by 0.1" in decision.reason
    assert "0.9 (v3) vs 0.8 (v2, current)" in decision.reason


def test_training_names_mean_the_evaluation_metric() -> None:
    assert gate("val_accuracy", SCORED, 3, 2).passed
    assert check_metric("val_rmse", "regression") == "rmse"
    with pytest.raises(SpecError, match="measure"):
        check_metric("val_rmse", "classification")


def test_a_tie_keeps_the_current_version() -> None:
    decision = gate("val_loss", SCORED, 3, 2)
    assert not decision.passed and decision.reason.startswith("a tie keeps the current version")


def test_worse_fails_in_either_direction() -> None:
    down = gate("accuracy", SCORED, 2, 3)
    assert not down.passed and down.reason.startswith("worse, lower accuracy 0.8 (v2)")
    lossy = evaluation({3: {"loss": 0.5}, 2: {"loss": 0.4}})
    up = gate("loss", lossy, 3, 2)
    assert not up.passed and up.reason.startswith("worse, higher loss")
    assert gate("loss", lossy, 2, 3).passed  # lower loss is better


def test_min_gain_demands_a_margin() -> None:
    assert gate("accuracy", SCORED, 3, 2, min_gain=0.05).passed
    short = gate("accuracy", SCORED, 3, 2, min_gain=0.2)
    assert not short.passed and "less than the required 0.2" in short.reason
    with pytest.raises(SpecError, match="≥ 0"):
        gate("accuracy", SCORED, 3, 2, min_gain=-0.1)


def test_a_metric_the_evaluation_lacks_is_an_error_listing_what_it_has() -> None:
    with pytest.raises(SpecError) as caught:
        gate("rmse", SCORED, 3, 2)
    assert "has no metric 'rmse'; it has ['accuracy', 'loss']" in caught.value.problems[0]


def test_nothing_to_beat_and_nothing_to_move_pass_without_an_evaluation() -> None:
    first = gate("accuracy", None, 3, None)
    assert first.passed and first.reason.startswith("nothing to beat")
    assert gate("accuracy", None, 3, 3).passed


def test_an_evaluation_of_other_versions_cannot_decide() -> None:
    with pytest.raises(RegistryError, match="tandem evaluate NAME 4 --against 2"):
        gate("accuracy", SCORED, 4, 2)
    with pytest.raises(RegistryError, match="scoring v3 and v2"):
        gate("accuracy", None, 3, 2)


# --- planning and scoring --------------------------------------------------------------


def settings_at(home: Path) -> Settings:
    return Settings(home, None, 24000, None, home / "cluster.yaml")


def register(
    registry: Registry, seed: int, spec: dict[str, Any] | None = None, **update: Any
) -> Manifest:
    """A tiny mlp(4 → 8 → 3) version (weights from ``seed``), optionally with a training
    spec in its lineage."""
    manifest = make_manifest().model_copy(update={"kwargs": {"hidden": [8]}, **update})
    if spec is not None:
        manifest = manifest.model_copy(
            update={"lineage": manifest.lineage.model_copy(update={"spec": spec})}
        )
    torch.manual_seed(seed)
    model = build_model(manifest.factory, manifest.kwargs, manifest.inputs, manifest.out_features)
    return registry.register(manifest, model.state_dict())


def write_iris(path: Path, rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f: rng.normal(3, 1, rows) for f in FEATURES})
    frame["species"] = rng.integers(0, 3, rows)
    frame["note"] = "unused"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    return frame


def train_spec(validation: str | None, train: str = "/data/train.parquet") -> dict[str, Any]:
    return {
        "name": "iris-mlp",
        "dataset": {
            "train": train,
            "validation": validation,
            "features": FEATURES,
            "label": "species",
        },
    }


def test_default_data_is_the_candidates_validation_set(tmp_path: Path) -> None:
    holdout = str(tmp_path / "val.parquet")
    manifest = make_manifest().model_copy(update={"version": 3})
    with_spec = manifest.model_copy(
        update={"lineage": manifest.lineage.model_copy(update={"spec": train_spec(holdout)})}
    )
    assert default_data(with_spec, None, None) == (holdout, "species")
    assert default_data(with_spec, "other.parquet", "y") == ("other.parquet", "y")
    assert default_data(manifest, "other.parquet", "y") == ("other.parquet", "y")


@pytest.mark.parametrize(
    ("spec", "data", "message"),
    [
        (None, None, "records no training spec"),
        (train_spec(None), None, "split of its own training data"),
        (None, "other.parquet", "pass --label COLUMN"),
    ],
)
def test_missing_default_data_says_what_to_pass(
    spec: dict[str, Any] | None, data: str | None, message: str
) -> None:
    manifest = make_manifest().model_copy(update={"version": 3})
    manifest = manifest.model_copy(
        update={"lineage": manifest.lineage.model_copy(update={"spec": spec})}
    )
    with pytest.raises(SpecError) as caught:
        default_data(manifest, data, None)
    assert message in caught.value.problems[0]
    if data is None:
        assert "--data URI" in caught.value.problems[0]


def test_plan_reads_only_the_needed_columns_of_the_default_data(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    registry = Registry(settings.storage_uri)
    holdout = tmp_path / "data" / "val.parquet"
    write_iris(holdout, 10)
    register(registry, 0)
    register(registry, 1, train_spec(str(holdout)))
    registry.set_alias("iris-mlp", "production", 1)
    planned = plan(settings, "iris-mlp", 2, against="production")
    assert planned.versions == [1, 2] and planned.against == "production"
    assert planned.columns == [*FEATURES, "species"] and planned.label == "species"
    assert planned.source.uri == str(holdout)
    alone = plan(settings, "iris-mlp", "latest")
    assert alone.versions == [2] and alone.baseline is None


def test_plan_refuses_versions_that_cannot_be_compared(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    registry = Registry(settings.storage_uri)
    holdout = tmp_path / "val.parquet"
    write_iris(holdout, 10)
    register(registry, 0)
    renamed = (
        make_manifest()
        .inputs[0]
        .model_copy(update={"columns": ["a", *FEATURES[1:]], "features": ["a", *FEATURES[1:]]})
    )
    register(registry, 1, inputs=[renamed])
    register(registry, 2, task="regression", target=TargetSchema(shape=[3]))
    with pytest.raises(SpecError, match="v3 is regression, v1 is classification"):
        plan(settings, "iris-mlp", 3, against=1, data=str(holdout), label="species")
    with pytest.raises(SpecError) as caught:
        plan(settings, "iris-mlp", 2, against=1, data=str(holdout), label="species")
    assert "only v2: ['a']; only v1: ['sepal_length']" in caught.value.problems[0]
    assert "same task and input columns" in caught.value.problems[-1]


def test_plan_checks_the_datas_columns_and_label(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    registry = Registry(settings.storage_uri)
    holdout = tmp_path / "val.parquet"
    frame = write_iris(holdout, 10)
    register(registry, 0)
    with pytest.raises(SpecError, match="lacks columns \\['nope'\\]"):
        plan(settings, "iris-mlp", 1, data=str(holdout), label="nope")
    frame.assign(species=frame["species"] + 0.5).to_parquet(holdout)
    with pytest.raises(SpecError, match="integer class ids"):
        plan(settings, "iris-mlp", 1, data=str(holdout), label="species")
    with pytest.raises(SpecError, match="nothing exists"):
        plan(settings, "iris-mlp", 1, data=str(tmp_path / "none.parquet"), label="species")
    register(registry, 1, train_spec(None, train=str(holdout)))
    with pytest.raises(SpecError, match="v2 trained on"):
        plan(settings, "iris-mlp", 1, against=2, data=str(holdout), label="species")


def test_scoring_in_chunks_equals_the_runners_on_all_rows(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path / "storage"))
    register(registry, 0)
    register(registry, 1)
    folder = tmp_path / "holdout"
    parts = [
        write_iris(folder / "part-0.parquet", 37, 0),
        write_iris(folder / "part-1.parquet", 21, 1),
    ]
    frame = pd.concat(parts, ignore_index=True)
    runners = [load_runner(registry, "iris-mlp", v) for v in (1, 2)]
    source = open_source(str(folder), "data")
    rows, scores = score_source(runners, source, [*FEATURES, "species"], "species", chunk_rows=8)
    assert rows == 58 and sorted(scores) == ["1", "2"]
    labels = frame["species"].to_numpy()
    for runner in runners:
        outputs = runner.predict([frame[FEATURES].to_numpy(dtype=np.float32)])
        assert scores[str(runner.version)] == pytest.approx(
            {"accuracy": m.accuracy(outputs, labels), "loss": m.loss(outputs, labels, [0, 1, 2])}
        )
    assert scores["1"] != scores["2"]


def test_score_chunk_scores_a_regression_runner(tmp_path: Path) -> None:
    runner = make_runner(task="regression", target=TargetSchema(shape=[2]), out_features=2)
    rng = np.random.default_rng(0)
    batch: dict[str, np.ndarray] = {f: rng.normal(3, 1, 6) for f in FEATURES}
    target = rng.normal(size=(6, 2))
    table = pa.table({"y": pa.array(list(target), pa.list_(pa.float64(), 2))})
    batch["y"] = numpy_batch(table.to_batches()[0], "test")["y"]  # as Parquet gives it
    totals = score_chunk(runner, batch, "y")
    predicted = runner.predict([np.stack([batch[f] for f in FEATURES], axis=1)])["prediction"]
    error = predicted - target
    assert totals.rows == 6
    assert totals.metrics() == pytest.approx(
        {"rmse": math.sqrt((error**2).mean()), "mae": np.abs(error).mean()}, rel=1e-6
    )


def test_the_task_body_loads_each_version_and_returns_picklable_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = str(tmp_path / "storage")
    registry = Registry(storage)
    register(registry, 0)
    register(registry, 1)
    write_iris(tmp_path / "val.parquet", 12)
    # The task sets its torch threads to the one CPU it reserved; not this test process's.
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    uri = str(tmp_path / "val.parquet")
    scored = score_versions(storage, "iris-mlp", [1, 2], uri, [*FEATURES, "species"], "species")
    assert scored.rows == 12 and sorted(scored.scores) == ["1", "2"]
    assert scored.fingerprint == open_source(uri, "data").fingerprint().digest
    assert pickle.loads(pickle.dumps(scored)) == scored
    assert pickle.loads(pickle.dumps(score_versions)) is score_versions  # by reference


def test_the_gate_loads_no_ray() -> None:
    code = "import sys, tandem.serve.promotion; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_missing_values_are_refused_naming_the_column(tmp_path: Path) -> None:
    table = pa.table({"x": [1.0, None, 3.0]})
    pq.write_table(table, tmp_path / "gaps.parquet")
    with pytest.raises(SpecError, match="'x' has 1 missing value"):
        numpy_batch(table.to_batches()[0], str(tmp_path / "gaps.parquet"))


# --- promote and the CLI without a cluster ---------------------------------------------


def test_promote_if_better_evaluates_first_then_refuses_a_tie(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_at(tmp_path)
    registry = Registry(settings.storage_uri)
    register(registry, 0)
    register(registry, 1)
    registry.set_alias("iris-mlp", "production", 1)
    calls: list[tuple[Any, ...]] = []

    def fake_evaluate(settings: Settings, name: str, candidate: int, against: str) -> Evaluation:
        calls.append((name, candidate, against))
        record = evaluation({2: {"accuracy": 0.8, "loss": 0.5}, 1: {"accuracy": 0.8, "loss": 0.6}})
        save(registry, record)
        return record

    monkeypatch.setattr(control, "evaluate", fake_evaluate)
    monkeypatch.setattr(control, "_follow_aliases", lambda name, settings: None)
    said: list[str] = []
    with pytest.raises(RegistryError, match=r"refusing to promote iris-mlp v2.*a tie keeps"):
        control.promote("iris-mlp", 2, settings, if_better="val_accuracy", say=said.append)
    assert calls == [("iris-mlp", 2, "production")] and "no stored evaluation" in said[0]
    assert registry.aliases("iris-mlp") == {"production": 1}
    # The stored evaluation decides the next time: no second run.
    assert control.promote("iris-mlp", 2, settings, if_better="loss", say=said.append) == 1
    assert len(calls) == 1 and registry.aliases("iris-mlp") == {"production": 2}
    assert said[-1].startswith("production may move to v2: better by 0.1")
    with pytest.raises(SpecError, match="measure"):
        control.promote("iris-mlp", 1, settings, if_better="rmse")


def test_evaluate_command_marks_the_better_value_and_names_winners(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = evaluation({3: {"accuracy": 0.9, "loss": 0.3}, 2: {"accuracy": 0.8, "loss": 0.3}})
    seen: list[tuple[Any, ...]] = []

    def fake(self: Client, *args: Any) -> Evaluation:
        seen.append(args)
        return record

    monkeypatch.setattr(Client, "evaluate", fake)
    result = CliRunner().invoke(app, ["evaluate", "iris-mlp", "3", "--data", "s3://b/holdout"])
    assert result.exit_code == 0, result.output
    assert seen == [("iris-mlp", "3", "production", "s3://b/holdout", None)]
    assert "100 rows of /data/holdout.parquet" in result.output
    assert "0.9 *" in result.output and "0.3 *" not in result.output
    assert "accuracy: v3 wins with 0.9 against v2 0.8 (higher is better)" in result.output
    assert "loss: tie at 0.3 (lower is better)" in result.output
    worse = CliRunner().invoke(app, ["evaluate", "iris-mlp", "2", "--json"])
    assert worse.exit_code == 0 and Evaluation.model_validate_json(worse.output) == record
