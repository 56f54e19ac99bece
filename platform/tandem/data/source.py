"""Parquet on any fsspec URI: locate files, read the schema, fingerprint the data.

No Ray here; ``ingest`` hands the pyarrow filesystem built here to Ray Data.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

from tandem.errors import SpecError

ContentKind = Literal["sha256", "store-checksum", "mixed"]
STORE_CHECKSUMS = ("md5Hash", "crc32c", "ETag", "etag")
"""Keys of ``fs.info`` under which object stores report a file's checksum: GCS's MD5 and
CRC32C (content only), then S3's and Azure's ETags (which change with every upload)."""
HASH_CHUNK_BYTES = 8 * 1024**2


@dataclass(frozen=True)
class Fingerprint:
    """The content of a dataset's files in one digest (``DatasetRef`` stores it)."""

    digest: str
    """sha256 hex over the files' relative paths, sizes and content identities."""
    kind: ContentKind
    """``sha256``: file bytes hashed; ``store-checksum``: the store's checksums; or ``mixed``."""
    files: int
    bytes: int


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

    def fingerprint(self) -> Fingerprint:
        """What the data is, by content: per file (in path order) its path relative to the
        data's folder, its size and either the store's checksum (``STORE_CHECKSUMS``: no
        bytes read) or the sha256 of its bytes. Modification times play no part."""
        digest = hashlib.sha256()
        one = len(self.files) == 1
        base = posixpath.dirname(self.files[0]) if one else posixpath.commonpath(self.files)
        kinds: set[ContentKind] = set()
        total = 0
        for path in self.files:
            info = self.fs.info(path)
            size = int(info.get("size") or 0)
            checksum = _store_checksum(info)
            kinds.add("sha256" if checksum is None else "store-checksum")
            identity = checksum or f"sha256={_sha256(self.fs, path)}"
            relative = posixpath.relpath(path, base)
            digest.update(f"{relative}\0{size}\0{identity}\n".encode())
            total += size
        kind: ContentKind = kinds.pop() if len(kinds) == 1 else "mixed"
        return Fingerprint(digest.hexdigest(), kind, len(self.files), total)


def _store_checksum(info: dict[str, Any]) -> str | None:
    """``key=value`` of the first checksum the store keeps for a file, if any."""
    for key in STORE_CHECKSUMS:
        if info.get(key):
            return f"{key}={info[key]}"
    return None


def _sha256(fs: AbstractFileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
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
