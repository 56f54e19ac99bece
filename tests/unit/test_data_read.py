"""The one Parquet reader: what it asks Ray Data for, checked without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray.data

from tandem.cluster import OFF_SERVE, pool_resources
from tandem.data import ingest, open_source, read_parquet
from tandem.data import read as read_module
from tandem.data.source import ParquetSource


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``ray.data.read_parquet`` call's arguments; this process's Data context is
    put back afterwards."""
    context = ray.data.DataContext.get_current()
    monkeypatch.setattr(context, "use_datasource_v2", context.use_datasource_v2)
    options = context.execution_options
    monkeypatch.setattr(options, "label_selector", options.label_selector)
    calls: list[dict[str, Any]] = []

    def fake_read(paths: list[str], **kwargs: Any) -> str:
        calls.append({"paths": paths, **kwargs})
        return "dataset"

    monkeypatch.setattr(read_module.ray.data, "read_parquet", fake_read)
    return calls


def source(tmp_path: Path) -> ParquetSource:
    for name in ("a", "b"):
        pq.write_table(pa.table({"x": [1.0, 2.0], "y": [0, 1]}), tmp_path / f"{name}.parquet")
    return open_source(str(tmp_path), "input")


def test_reads_in_the_pool_and_keeps_the_pipeline_off_serve(
    tmp_path: Path, reads: list[dict[str, Any]]
) -> None:
    parquet = source(tmp_path)
    assert read_parquet(parquet, ["x"], "batch") == "dataset"
    assert reads == [
        {
            "paths": list(parquet.files),
            "filesystem": parquet.arrow_fs,
            "columns": ["x"],
            "resources": pool_resources("batch"),
            "override_num_blocks": None,  # Ray Data's own default
        }
    ]
    context = ray.data.DataContext.get_current()
    assert context.use_datasource_v2 is False
    assert context.execution_options.label_selector == OFF_SERVE


def test_training_ingest_reads_in_the_train_pool_in_blocks_of_its_size(
    tmp_path: Path, reads: list[dict[str, Any]]
) -> None:
    ingest.read_split(source(tmp_path), ["x", "y"])
    (call,) = reads
    assert call["columns"] == ["x", "y"] and call["resources"] == pool_resources("train")
    assert call["override_num_blocks"] == 1  # a few hundred bytes: one block
