"""Parquet on any fsspec URI: locate files, read the schema, fingerprint the data.

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

    def total_bytes(self) -> int:
        return sum(int(self.fs.info(path).get("size") or 0) for path in self.files)

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
