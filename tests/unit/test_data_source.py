from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tandem.data.digits import FEATURES, write_digits
from tandem.data.fit import label_index
from tandem.data.schema import draft_inputs, draft_target
from tandem.data.source import open_source
from tandem.errors import SpecError
from tandem.preprocess import Moments, feature_matrix
from tandem.specs import DatasetSpec


def spec(**changes: object) -> DatasetSpec:
    base = {"train": "x", "features": ["a", "b"], "label": "y"}
    return DatasetSpec.model_validate({**base, **changes})


def write(path: Path, table: pa.Table) -> str:
    pq.write_table(table, path)
    return str(path)


def test_missing_uri_names_the_field() -> None:
    with pytest.raises(SpecError) as info:
        open_source("/nonexistent/data.parquet", "dataset.train")
    assert info.value.problems[0].startswith("dataset.train: nothing exists at")


def test_folder_without_parquet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"holds no \.parquet files"):
        open_source(str(tmp_path), "dataset.train")


def test_missing_and_non_numeric_columns_name_the_field(tmp_path: Path) -> None:
    table = pa.table({"a": [1.0], "b": ["text"], "y": [1]})
    schema = open_source(write(tmp_path / "t.parquet", table), "dataset.train").schema()
    with pytest.raises(SpecError) as info:
        draft_inputs(schema, spec(features=["a", "zz"]))
    assert info.value.problems[0].startswith("dataset.features: column 'zz' is not in")
    with pytest.raises(SpecError, match=r"dataset\.features: column 'b' must be numeric"):
        draft_inputs(schema, spec())


def test_classification_label_must_be_integer(tmp_path: Path) -> None:
    table = pa.table({"a": [1.0], "b": [2.0], "y": [0.5]})
    schema = open_source(write(tmp_path / "t.parquet", table), "dataset.train").schema()
    with pytest.raises(SpecError, match=r"dataset\.label: classification needs an integer"):
        draft_target(schema, spec(), "classification")
    assert draft_target(schema, spec(), "regression").shape == []


def test_fixed_size_list_column_gives_its_width(tmp_path: Path) -> None:
    values = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(12, dtype=np.float32)), 4)
    table = pa.table({"pixels": values, "y": [0, 1, 2]})
    schema = open_source(write(tmp_path / "t.parquet", table), "dataset.train").schema()
    [draft] = draft_inputs(schema, spec(features=["pixels"]))
    assert draft.shape == [4] and draft.features == [f"pixels[{i}]" for i in range(4)]
    assert draft.name == "input" and draft.kind == "tabular"


def test_memory_filesystem_and_fingerprint_change_with_the_data() -> None:
    uri = "memory://tandem-test/digits"
    write_digits(uri)
    source = open_source(f"{uri}/train.parquet", "dataset.train")
    assert {*FEATURES, "label"} <= set(source.schema().names)
    before = source.fingerprint()
    frame = pd.DataFrame({"f0": [1.0], "label": [1]})
    with source.fs.open(source.files[0], "wb") as handle:
        frame.to_parquet(handle)
    assert open_source(f"{uri}/train.parquet", "dataset.train").fingerprint() != before


def test_moments_merged_from_parts_equal_the_whole() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)).astype(np.float32)
    merged = Moments.of(x[:30]).merge(Moments.of(x[30:]))
    mean, std = merged.mean_std()
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, x.std(axis=0), rtol=1e-4)


def test_moments_of_images_are_per_channel() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 3, 4, 4)).astype(np.float32)
    mean, std = Moments.of(x).mean_std()
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=1e-4)


def test_constant_feature_is_not_divided_by_zero() -> None:
    x = np.ones((5, 2), dtype=np.float32)
    _, std = Moments.of(x).mean_std()
    assert std == [1.0, 1.0]


def test_labels_map_to_indices_and_unknown_ones_are_refused() -> None:
    classes = np.array([3, 7, 9])
    assert label_index(classes, np.array([9, 3])).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"\[5\]"):
        label_index(classes, np.array([5]))


def test_feature_matrix_from_columns_and_from_a_list_column() -> None:
    batch = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    assert feature_matrix(batch, ["b", "a"]).tolist() == [[3.0, 1.0], [4.0, 2.0]]
    listed = {"p": np.array([np.array([1, 2]), np.array([3, 4])], dtype=object)}
    assert feature_matrix(listed, ["p"]).tolist() == [[1.0, 2.0], [3.0, 4.0]]
