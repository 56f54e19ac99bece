"""test_train's three digits jobs, run one after another in a thread on the session's
cluster: the job through Ray's own ``ray job submit``, a run whose train worker is
SIGKILLed and whose job is then stopped, and that run finished with ``--resume``.

They start through the ``train_runs`` fixture (tests/conftest.py) when the first module
that runs no training job starts (``train_pool_idle``): the train pool's core is then
idle but for them. One job at a time, so those modules' own train-pool work still finds
CPUs. The thread runs only while this process's Ray connection is the session cluster's:
test_train's checks wait for it, and run before any test that starts a cluster of its own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.util import state as ray_state

from factories import digits_job_spec
from private_cluster import REPO
from tandem.cluster import jobs, local
from tandem.errors import JobFailedError
from tandem.settings import Settings

BIN = Path(sys.executable).parent
STEP_TIMEOUT_S = 900.0
RESUMED = r"resumed from the checkpoint of epoch \d+"
BY_RAY_CLI = "digits-ray-cli"
"""The model the ``ray job submit`` job registers (test_cluster's digits-mlp is another)."""


def job_spec(name: str, epochs: int = 12) -> dict[str, object]:
    """``digits_job_spec`` with a wider MLP, a checkpoint every epoch and three retries."""
    return digits_job_spec(name, epochs) | {
        "model": {"factory": "tandem.models:mlp", "kwargs": {"hidden": [128, 64]}},
        "checkpoint": {"every_epochs": 1, "keep": 3},
        "failure": {"max_failures": 3},
    }


def wait_for_log(handle: jobs.JobHandle, pattern: str, timeout_s: float = 600) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        logs = handle.logs()
        if re.search(pattern, logs):
            return logs
        assert handle.status() not in ("FAILED", "STOPPED", "SUCCEEDED"), logs[-3000:]
        time.sleep(1)
    raise AssertionError(f"{pattern!r} never appeared in the job logs")


@dataclass(frozen=True)
class Interrupted:
    """A run whose worker was killed (the worker group resumed it) and whose job was then
    stopped: ``logs`` are the stopped job's."""

    spec: dict[str, object]
    logs: str


@dataclass(frozen=True)
class Resumed:
    """The interrupted run, finished by a second job with ``--resume``."""

    submission_id: str
    logs: str


class Step:
    """One job of the chain: its outcome, or what went wrong, once it has run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self, work: Callable[[], object]) -> None:
        try:
            self.value = work()
        except BaseException as error:  # handed to the test that checks this step
            self.error = error
        finally:
            self.done.set()

    def result(self) -> Any:
        if not self.done.wait(STEP_TIMEOUT_S):
            pytest.fail(f"the background {self.name} did not end")
        if self.error is not None:
            raise self.error
        return self.value


class TrainRuns:
    """The three jobs, one after another, in a thread started at construction.

    The thread reaches the cluster only through the jobs API client and the GCS address
    taken here: Tandem's own cluster calls would start a pool node that a reliability test
    has just killed on purpose."""

    def __init__(self, settings: Settings, folder: Path, cli_env: dict[str, str]) -> None:
        state = local.ClusterState.read(settings)
        assert state is not None
        self.gcs_address = state.gcs_address
        self.jobs = jobs.client(settings)
        self.folder = folder
        self.cli_env = cli_env
        self.by_ray_cli = Step("ray job submit")
        self.interrupted = Step("interrupted run")
        self.resumed = Step("resumed run")
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        self.by_ray_cli.run(self._ray_job_submit)
        self.interrupted.run(self._interrupt)
        self.resumed.run(self._resume)

    def _submit(self, spec: dict[str, object], *flags: str) -> jobs.JobHandle:
        command = f"python -m tandem.train.main --spec-json '{json.dumps(spec)}' {' '.join(flags)}"
        return jobs.JobHandle(self.jobs, self.jobs.submit_job(entrypoint=command))

    def _train_workers(self, handle: jobs.JobHandle) -> list[int]:
        """PIDs of the job's live Ray Train workers."""
        job_id = self.jobs.get_job_info(handle.submission_id).job_id
        actors = ray_state.list_actors(
            address=self.gcs_address,
            filters=[
                ("class_name", "=", "RayTrainWorker"),
                ("state", "=", "ALIVE"),
                ("job_id", "=", job_id),
            ],
        )
        return [a.pid for a in actors if a.pid]

    def _ray_job_submit(self) -> subprocess.CompletedProcess[str]:
        spec_path = self.folder / f"{BY_RAY_CLI}.yaml"
        spec_path.write_text(yaml.safe_dump(job_spec(BY_RAY_CLI)))
        command = ["job", "submit", "--working-dir", str(REPO), "--"]
        return subprocess.run(
            [str(BIN / "ray"), *command, "python", "jobs/train.py", str(spec_path)],
            capture_output=True,
            text=True,
            env=self.cli_env,
            timeout=STEP_TIMEOUT_S,
        )

    def _interrupt(self) -> Interrupted:
        """A train worker is SIGKILLed at epoch 4; once the worker group has resumed and
        trained on, the job is stopped (one run for both kinds of resume)."""
        spec = job_spec("digits-interrupted", epochs=40)
        handle = self._submit(spec)
        wait_for_log(handle, r"epoch 4/40 train_loss")
        victims = self._train_workers(handle)
        assert len(victims) == 2, victims
        os.kill(victims[-1], signal.SIGKILL)
        # An epoch trained after the resume: the workers came back and went on.
        wait_for_log(handle, RESUMED + r"[\s\S]*epoch \d+/40 train_loss")
        handle.stop()
        with pytest.raises(JobFailedError, match="STOPPED"):
            handle.wait(timeout_s=120)
        return Interrupted(spec, handle.logs())

    def _resume(self) -> Resumed:
        """Fewer epochs than the stopped job's 40, more than it reached before the stop."""
        spec: Any = self.interrupted.result().spec
        resumed = self._submit({**spec, "train": {**spec["train"], "epochs": 16}}, "--resume")
        resumed.wait(timeout_s=STEP_TIMEOUT_S)
        return Resumed(resumed.submission_id, resumed.logs())
