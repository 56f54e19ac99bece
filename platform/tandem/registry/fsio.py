"""The two storage primitives the registry's guarantees rest on, over any fsspec filesystem.

- ``create_exclusive``: create a file only if it does not exist (``open(..., "xb")``).
  Local filesystems map it to ``O_CREAT | O_EXCL``; s3fs, gcsfs and adlfs map it
  to a conditional PUT (``If-None-Match: *`` / ``ifGenerationMatch=0``).
- ``write_atomic``: write a sibling temporary file, then move it over the target,
  so readers see the old content or the new, never a prefix. Locally the move is
  ``rename(2)``; on object stores it is a server-side copy, which also lands whole.
"""

from __future__ import annotations

import posixpath
import threading
import uuid

from fsspec import AbstractFileSystem
from fsspec.implementations.memory import MemoryFileSystem

# MemoryFileSystem checks for existence and then creates, two separate steps; it
# lives in one process only, so a process-wide lock makes its "xb" exclusive.
_memory_create = threading.Lock()


def create_exclusive(fs: AbstractFileSystem, path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data``; False (and nothing written) if it already exists."""
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    try:
        if isinstance(fs, MemoryFileSystem):
            with _memory_create, fs.open(path, "xb") as file:
                file.write(data)
        else:
            with fs.open(path, "xb") as file:
                file.write(data)
    except FileExistsError:
        return False
    return True


def write_atomic(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (survives a crash of this process).

    Nothing is fsynced: after a power loss on a local disk the new content may be
    missing, as with any rename-based write.
    """
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    fs.pipe_file(temporary, data)
    fs.mv(temporary, path)


def read_bytes(fs: AbstractFileSystem, path: str) -> bytes | None:
    """The file's content, or None when it does not exist."""
    try:
        data: bytes = fs.cat_file(path)
    except FileNotFoundError:
        return None
    return data
