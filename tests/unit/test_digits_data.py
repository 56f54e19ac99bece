"""The digits writer: every input kind Tandem reads, holding the same digit, and the same
split and columns as before the image/tensor/sequence columns were added."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from tandem.data import write_digits
from tandem.data.digits import FEATURES
from tandem.preprocess import decode_image
from tandem.specs import TrainJobSpec, load
from tandem.specs.dataset import input_columns

REPO = Path(__file__).resolve().parents[2]
SPLITS = ("train", "validation")


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pa.Table]:
    folder = tmp_path_factory.mktemp("digits")
    assert write_digits(str(folder)) == {"train": 1437, "validation": 360}
    return {name: pq.read_table(folder / f"{name}.parquet") for name in SPLITS}


def pixel_values(table: pa.Table) -> np.ndarray:
    """``[N, 64]`` 0..16 from the tabular columns."""
    return np.stack([table.column(f).to_numpy() for f in FEATURES], axis=1)


def test_column_types(tables: dict[str, pa.Table]) -> None:
    schema = tables["train"].schema
    assert all(schema.field(f).type == pa.float32() for f in FEATURES)
    assert schema.field("label").type == pa.int64()
    assert schema.field("image").type == pa.binary()
    assert schema.field("pixels").type == pa.fixed_shape_tensor(pa.uint8(), [1, 8, 8])
    assert schema.field("tokens").type == pa.list_(pa.int64())
    assert schema.field("ink").type == pa.float32()
    assert schema.field("ink_top_half").type == pa.float32()


def test_split_and_tabular_columns_are_unchanged(tmp_path: Path) -> None:
    """The frame the writer produced before the new columns, built as it was built then."""
    write_digits(str(tmp_path), seed=3)
    digits = load_digits()
    frame = pd.DataFrame(digits.data.astype("float32"), columns=FEATURES)
    frame["label"] = digits.target.astype("int64")
    parts = train_test_split(frame, test_size=0.2, random_state=3, stratify=frame["label"])
    for name, part in zip(SPLITS, parts, strict=True):
        written = pd.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(written[[*FEATURES, "label"]], part.reset_index(drop=True))


def test_png_and_tensor_hold_the_scaled_digit(tables: dict[str, pa.Table]) -> None:
    for table in tables.values():
        scaled = np.rint(pixel_values(table) * 255 / 16).reshape(-1, 1, 8, 8)
        tensors = table.column("pixels").combine_chunks().to_numpy_ndarray()
        assert tensors.dtype == np.uint8
        np.testing.assert_array_equal(tensors, scaled)
        decoded = np.stack(
            [decode_image(png, [1, 8, 8]) for png in table.column("image").to_pylist()]
        )
        np.testing.assert_array_equal(np.rint(decoded * 255), scaled)


def test_tokens_decode_back_to_the_digit(tables: dict[str, pa.Table]) -> None:
    for table in tables.values():
        values = pixel_values(table)
        lengths = []
        for row, ids in enumerate(table.column("tokens").to_pylist()):
            ids = np.asarray(ids)
            assert ids.min() >= 1 and ids.max() <= 1024
            assert (np.diff(ids) > 0).all()  # row-major order
            image = np.zeros(64)
            image[(ids - 1) // 16] = (ids - 1) % 16 + 1
            np.testing.assert_array_equal(image, values[row])
            lengths.append(len(ids))
        assert 1 <= min(lengths) < max(lengths) <= 64


def test_ink_columns_sum_the_digit(tables: dict[str, pa.Table]) -> None:
    for table in tables.values():
        values = pixel_values(table)
        np.testing.assert_allclose(table.column("ink").to_numpy(), values.sum(axis=1) / 16)
        top = table.column("ink_top_half").to_numpy()
        np.testing.assert_allclose(top, values[:, :32].sum(axis=1) / 16)


@pytest.mark.parametrize("name", ["image", "tensor", "sequence", "two-input"])
def test_example_specs_read_columns_the_writer_writes(
    name: str, tables: dict[str, pa.Table]
) -> None:
    spec = load(TrainJobSpec, REPO / "jobs" / "specs" / f"digits-{name}.yaml")
    assert spec.dataset.train == "data/digits/train.parquet"
    names = set(tables["train"].schema.names)
    for declared in spec.dataset.model_inputs:
        assert set(input_columns(declared)) <= names
    assert spec.dataset.label in names
