"""A submitted job (training or batch) and the typed result it produces when it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, Literal, TypeVar, overload

from tandem.cluster import JobHandle

ResultT = TypeVar("ResultT")


class Job(Generic[ResultT]):
    """A job on the cluster: poll it, read or follow its logs, wait for its result, stop it."""

    def __init__(self, handle: JobHandle, result: Callable[[], ResultT]) -> None:
        self._handle = handle
        self._load_result = result
        self._result: ResultT | None = None

    @property
    def submission_id(self) -> str:
        return self._handle.submission_id

    def status(self) -> str:
        """``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``STOPPED``."""
        return self._handle.status()

    @overload
    def logs(self, follow: Literal[False] = False) -> str: ...
    @overload
    def logs(self, follow: Literal[True]) -> Iterator[str]: ...
    def logs(self, follow: bool = False) -> str | Iterator[str]:
        """The logs so far, or (``follow=True``) chunks as they arrive until the job ends."""
        return self._handle.follow() if follow else self._handle.logs()

    def wait(self, timeout_s: float | None = None) -> ResultT:
        """Block until the job ends; its result, or ``JobFailedError`` with Ray's message."""
        if self._result is None:
            self._handle.wait(timeout_s=timeout_s)
            self._result = self._load_result()
        return self._result

    def stop(self) -> bool:
        """Ask Ray to stop the job; ``False`` when it had already ended."""
        return self._handle.stop()

    def __repr__(self) -> str:
        return f"Job({self.submission_id!r})"
