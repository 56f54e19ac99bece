"""``tandem predict``'s input files, read without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tandem.cli import app
from tandem.cli.predict_commands import read_rows


def test_tables_keep_column_names_and_json_rows_stay_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"b": [1.0, 2.0], "a": [3.0, 4.0]})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    frame.to_parquet(tmp_path / "rows.parquet")
    (tmp_path / "records.json").write_text(frame.to_json(orient="records"))
    (tmp_path / "rows.json").write_text(json.dumps([[1, 3], [2, 4]]))
    for name in ("rows.csv", "rows.parquet", "records.json"):
        read = read_rows(tmp_path / name)
        assert isinstance(read, pd.DataFrame)
        pd.testing.assert_frame_equal(read, frame, check_dtype=False)
    rows = read_rows(tmp_path / "rows.json")
    assert isinstance(rows, np.ndarray) and rows.dtype == np.float32 and rows.shape == (2, 2)


@pytest.mark.parametrize(
    ("name", "message"), [("rows.txt", "expected a .json"), ("none.csv", "no such file")]
)
def test_unusable_input_exits_1_with_a_message(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "rows.txt").write_text("1,2")
    result = CliRunner().invoke(app, ["predict", "m", "--input", str(tmp_path / name)])
    assert result.exit_code == 1
    assert message in result.output
