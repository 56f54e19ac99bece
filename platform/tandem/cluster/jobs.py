"""The Ray Jobs API seam: submit an entrypoint, follow it, stop it.

Every ``JobSubmissionClient`` call lives here; the embedded cluster's auth
token is configured by ``session.jobs_api_address``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ray.job_submission import JobStatus, JobSubmissionClient

import tandem.cluster.session as session
from tandem.errors import JobFailedError, NotFoundError
from tandem.settings import Settings

TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}


@dataclass(frozen=True)
class JobInfo:
    submission_id: str
    status: str
    entrypoint: str
    message: str | None


class JobHandle:
    """One submitted job: poll it, read or follow its logs, wait for it, stop it."""

    def __init__(self, client: JobSubmissionClient, submission_id: str) -> None:
        self._client = client
        self.submission_id = submission_id

    def status(self) -> str:
        return str(self._client.get_job_status(self.submission_id).value)

    def logs(self) -> str:
        return str(self._client.get_job_logs(self.submission_id))

    def follow(self) -> Iterator[str]:
        """Log chunks as the job writes them, until it ends."""
        stream = self._client.tail_job_logs(self.submission_id)
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    yield loop.run_until_complete(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.close()

    def wait(self, timeout_s: float | None = None, poll_s: float = 1.0) -> str:
        """Block until the job ends; ``JobFailedError`` unless it succeeded."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while (status := self._client.get_job_status(self.submission_id)) not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {self.submission_id} still {status.value} after {timeout_s:.0f}s"
                )
            time.sleep(poll_s)
        if status != JobStatus.SUCCEEDED:
            info = self._client.get_job_info(self.submission_id)
            raise JobFailedError(f"job {self.submission_id} {status.value}: {info.message}")
        return str(status.value)

    def stop(self) -> bool:
        return bool(self._client.stop_job(self.submission_id))


def current_submission_id() -> str | None:
    """The submission id of the Ray job this process is the driver of, if any.

    Ray's job supervisor hands it to the driver in the job config's metadata.
    """
    config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    submission_id = config.get("metadata", {}).get("job_submission_id")
    return str(submission_id) if submission_id else None


def client(settings: Settings, start: bool = True) -> JobSubmissionClient:
    return JobSubmissionClient(session.jobs_api_address(settings, start=start))


def submit(
    settings: Settings,
    entrypoint: str,
    env_vars: dict[str, str] | None = None,
    submission_id: str | None = None,
    py_modules: list[str] | None = None,
) -> JobHandle:
    """``py_modules``: local package folders Ray uploads and puts on the job's path."""
    jobs = client(settings)
    runtime_env: dict[str, object] = {}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    if py_modules:
        runtime_env["py_modules"] = py_modules
    job_id = jobs.submit_job(
        entrypoint=entrypoint, runtime_env=runtime_env or None, submission_id=submission_id
    )
    return JobHandle(jobs, job_id)


def attach(settings: Settings, submission_id: str) -> JobHandle:
    jobs = client(settings, start=False)
    try:
        jobs.get_job_status(submission_id)
    except RuntimeError as error:
        raise NotFoundError(f"no job {submission_id!r} on this cluster ({error})") from None
    return JobHandle(jobs, submission_id)


def list_jobs(settings: Settings) -> list[JobInfo]:
    jobs = client(settings, start=False).list_jobs()
    return [
        JobInfo(j.submission_id or j.job_id or "?", str(j.status.value), j.entrypoint, j.message)
        for j in sorted(jobs, key=lambda j: j.start_time or 0)
    ]
