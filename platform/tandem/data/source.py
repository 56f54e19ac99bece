"""Parquet on any fsspec URI: locate files, check the schema, fingerprint the data.

No Ray here; ``ingest`` hands the pyarrow filesystem built here to Ray Data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from tandem.errors import SpecError
from tandem.specs.dataset import DatasetSpec


@dataclass(frozen=True)
class ParquetSource:
    """The Parquet files behind one URI, with the filesystem to read them."""

    uri: str
    fs: AbstractFileSystem
    files: tuple[str, ...]

    @property
    def arrow_fs(self) -> pafs.FileSystem:
        """A pyarrow filesystem wrapping the fsspec one (what Ray Data reads through)."""
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def schema(self) -> pa.Schema:
        return pq.read_schema(self.files[0], filesystem=self.arrow_fs)

    def fingerprint(self) -> str:
        """sha256 over each file's path, size and modification stamp."""
        digest = hashlib.sha256()
        for path in self.files:
            info = self.fs.info(path)
            stamp = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
            digest.update(f"{path}\0{info.get('size')}\0{stamp}\n".encode())
        return digest.hexdigest()


def open_source(uri: str, field: str) -> ParquetSource:
    """Find the Parquet files at ``uri`` (a file or a folder); ``field`` names it in errors."""
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as error:
        raise SpecError(field, [f"{field}: cannot open {uri!r}: {error}"]) from None
    if not fs.exists(path):
        raise SpecError(field, [f"{field}: nothing exists at {uri!r}; write the data first"])
    if fs.isdir(path):
        files = sorted(p for p in fs.find(path) if p.endswith(".parquet"))
        if not files:
            raise SpecError(field, [f"{field}: folder {uri!r} holds no .parquet files"])
    else:
        files = [path]
    return ParquetSource(uri=uri, fs=fs, files=tuple(files))


def feature_width(schema: pa.Schema, spec: DatasetSpec) -> tuple[int, str | None]:
    """Number of model inputs and, for one fixed-size-list column, that column's name.

    Raises ``SpecError`` naming ``dataset.features`` / ``dataset.label`` when the
    Parquet schema does not hold what the spec says.
    """
    problems = []
    missing = [name for name in [*spec.features, spec.label] if name not in schema.names]
    for name in missing:
        field = "dataset.label" if name == spec.label else "dataset.features"
        problems.append(
            f"{field}: column {name!r} is not in the Parquet schema; "
            f"columns are {schema.names[:20]}"
        )
    if problems:
        raise SpecError("dataset", problems)
    if len(spec.features) == 1:
        column = schema.field(spec.features[0])
        if pa.types.is_fixed_size_list(column.type):
            if not _numeric(column.type.value_type):
                raise SpecError(
                    "dataset",
                    [
                        f"dataset.features: list column {column.name!r} "
                        f"must hold numbers (got {column.type})"
                    ],
                )
            return column.type.list_size, column.name
    for name in spec.features:
        kind = schema.field(name).type
        if not _numeric(kind):
            problems.append(f"dataset.features: column {name!r} must be numeric (got {kind})")
    if problems:
        raise SpecError("dataset", problems)
    return len(spec.features), None


def check_label(schema: pa.Schema, spec: DatasetSpec, task: str) -> None:
    kind = schema.field(spec.label).type
    if task == "classification" and not pa.types.is_integer(kind):
        raise SpecError(
            "dataset",
            [
                f"dataset.label: classification needs an integer label column; {spec.label!r} "
                f"is {kind} (write class ids as integers, or set task: regression)"
            ],
        )
    if task == "regression" and not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
        raise SpecError(
            "dataset",
            [f"dataset.label: regression needs a numeric label column; {spec.label!r} is {kind}"],
        )


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))
