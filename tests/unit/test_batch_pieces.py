"""Batch inference's pure parts: model refs, the per-batch scorer, row numbering, output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from factories import make_manifest
from tandem.batch.config import parse_model_ref
from tandem.batch.output import BatchResult, ScoredParquet, read_summary
from tandem.batch.pipeline import check_columns
from tandem.batch.transform import RowIndex, Scorer
from tandem.data.source import open_source
from tandem.errors import SpecError
from tandem.models import ModelRunner, build_model
from tandem.registry import Registry


@pytest.fixture
def runner(tmp_path: Path) -> ModelRunner:
    registry = Registry(str(tmp_path))
    # The factory gets the widths from the manifest's input and outputs, not from kwargs.
    runnable = make_manifest().model_copy(update={"kwargs": {"hidden": [8]}})
    torch.manual_seed(3)
    model = build_model(runnable.factory, runnable.kwargs, runnable.inputs, runnable.out_features)
    stored = registry.register(runnable, model.state_dict())
    return ModelRunner(*registry.load_weights(stored.name, stored.version))


def raw_batch(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    features = make_manifest().inputs[0].features
    batch = {name: rng.normal(3, 1, n).astype(np.float64) for name in reversed(features)}
    batch["customer"] = np.arange(100, 100 + n)
    return batch


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("digits", ("digits", "latest")),
        ("digits:3", ("digits", 3)),
        ("d:production", ("d", "production")),
    ],
)
def test_model_refs_name_a_version_or_alias(ref: str, expected: tuple[str, object]) -> None:
    assert parse_model_ref(ref) == expected


@pytest.mark.parametrize("ref", [":3", "digits:"])
def test_malformed_model_refs_say_what_to_write(ref: str) -> None:
    with pytest.raises(SpecError, match="NAME or NAME:VERSION"):
        parse_model_ref(ref)


def test_scorer_outputs_equal_the_runner_on_the_same_rows_in_feature_order(
    runner: ModelRunner,
) -> None:
    batch = raw_batch(7)
    scored = Scorer(runner, id_column="customer")(batch)
    features = runner.manifest.inputs[0].features
    rows = np.stack([batch[f] for f in features], axis=1).astype(np.float32)
    expected = runner.predict([rows])
    assert list(scored) == ["customer", "probabilities", "label"]
    np.testing.assert_array_equal(scored["customer"], batch["customer"])
    np.testing.assert_array_equal(scored["label"], expected["label"])
    np.testing.assert_allclose(scored["probabilities"], expected["probabilities"])


def test_row_index_numbers_rows_across_batches() -> None:
    index = RowIndex("row")
    first = index({"label": np.zeros(3)})
    second = index({"label": np.zeros(2)})
    assert first["row"].tolist() == [0, 1, 2] and second["row"].tolist() == [3, 4]
    assert list(first) == ["row", "label"]


def test_scored_parquet_holds_every_batch_in_order_and_a_summary(
    runner: ModelRunner, tmp_path: Path
) -> None:
    scorer, index = Scorer(runner, id_column=None), RowIndex("row")
    folder = str(tmp_path / "out")
    with ScoredParquet(folder) as writer:
        for n in (5, 3):
            writer.write(index(scorer(raw_batch(n))))
        writer.write_summary(
            BatchResult(
                model="m",
                version=1,
                requested="latest",
                rows=writer.rows,
                seconds=2.0,
                output=writer.uri,
            )
        )
    table = pd.read_parquet(folder)  # the summary file is skipped by Parquet readers
    assert table["row"].tolist() == list(range(8))
    assert np.stack(table["probabilities"].to_list()).shape == (8, 3)
    assert pq.read_schema(writer.uri).field("probabilities").type.list_size == 3
    summary = read_summary(folder)
    assert summary.rows == 8 and summary.rows_per_s == 4.0


def test_missing_input_columns_are_named_before_anything_runs(tmp_path: Path) -> None:
    manifest = make_manifest()
    frame = pd.DataFrame({"sepal_length": [1.0], "petal_width": [2.0]})
    frame.to_parquet(tmp_path / "in.parquet")
    source = open_source(str(tmp_path / "in.parquet"), "input")
    with pytest.raises(SpecError) as error:
        check_columns(source, manifest, id_column="customer")
    problems = "\n".join(error.value.problems)
    assert "'sepal_width'" in problems and "'petal_length'" in problems
    assert "'customer'" in problems and "--id-column" in problems
