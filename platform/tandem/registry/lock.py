"""A lock file on fsspec storage, claimed by exclusive create, for short critical sections.

Its strength is that of ``fsio.create_exclusive`` on the backend. Breaking a stale
lock (its holder crashed) is best-effort: two waiters that both find the same
lock stale may race, so ``stale_after_s`` must be far longer than any critical
section, which is what makes that race need a crash in the first place.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from fsspec import AbstractFileSystem
from pydantic import BaseModel, ConfigDict, Field

import tandem.registry.fsio as fsio
from tandem.errors import RegistryError


class LockPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stale_after_s: float = Field(30.0, gt=0)
    """A lock file older than this belongs to a crashed holder and is removed.
    Alias moves hold the lock for a few storage round-trips, well under a second."""
    wait_s: float = Field(10.0, gt=0)
    """How long to wait for a live holder before giving up."""


@contextmanager
def held(fs: AbstractFileSystem, path: str, policy: LockPolicy) -> Iterator[None]:
    """Hold the lock file at ``path`` for the ``with`` block; RegistryError after ``wait_s``."""
    token = uuid.uuid4().hex.encode()
    deadline = time.monotonic() + policy.wait_s
    delay = 0.002
    while not fsio.create_exclusive(fs, path, token):
        _remove_if_stale(fs, path, policy.stale_after_s)
        if time.monotonic() > deadline:
            raise RegistryError(
                f"lock {path} has been held by another writer for over {policy.wait_s:g}s; "
                "if no registry writer is running, delete that file and retry"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    try:
        yield
    finally:
        # A holder that overran stale_after_s may have lost the lock to another
        # writer; removing that writer's lock would let a third one in beside it.
        if fsio.read_bytes(fs, path) == token:
            fs.rm_file(path)


def _remove_if_stale(fs: AbstractFileSystem, path: str, stale_after_s: float) -> None:
    try:
        age = (datetime.now(UTC) - fs.modified(path)).total_seconds()
        if age > stale_after_s:
            fs.rm_file(path)
    except FileNotFoundError:
        pass  # released (or broken by another waiter) since we tried to create it
