"""The scored Parquet file and the job's summary, written through fsspec. No Ray."""

from __future__ import annotations

import posixpath
from types import TracebackType

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from tandem.specs import VersionRef

PART_FILE = "part-00000.parquet"
SUMMARY_FILE = "_batch.json"
"""Starts with ``_`` so Parquet readers of the output folder skip it."""


class BatchResult(BaseModel):
    """What a finished batch job scored, stored next to its output as ``_batch.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    version: int
    requested: VersionRef
    rows: int
    seconds: float
    output: str
    """URI of the scored Parquet file."""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def to_table(batch: dict[str, np.ndarray]) -> pa.Table:
    """Columns of a numpy batch; a 2-D output (class probabilities) becomes a fixed-size list."""
    columns = {}
    for name, values in batch.items():
        if values.ndim == 2:
            flat = pa.array(np.ascontiguousarray(values).reshape(-1))
            columns[name] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        else:
            columns[name] = pa.array(values)
    return pa.table(columns)


class ScoredParquet:
    """One Parquet file under ``folder`` written batch by batch, in the order given."""

    def __init__(self, folder: str) -> None:
        self.fs, root = fsspec.core.url_to_fs(folder)
        self.fs.makedirs(root, exist_ok=True)
        self.root = root
        self.uri = folder.rstrip("/") + "/" + PART_FILE
        self._file = self.fs.open(posixpath.join(root, PART_FILE), "wb")
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, batch: dict[str, np.ndarray]) -> None:
        table = to_table(batch)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._file, table.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def write_summary(self, result: BatchResult) -> None:
        self.fs.pipe_file(
            posixpath.join(self.root, SUMMARY_FILE), result.model_dump_json(indent=2).encode()
        )

    def __enter__(self) -> ScoredParquet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
        self._file.close()


def read_summary(folder: str) -> BatchResult:
    fs, root = fsspec.core.url_to_fs(folder)
    return BatchResult.model_validate_json(fs.cat_file(posixpath.join(root, SUMMARY_FILE)))
