"""The zoo's four shipped specs (image, tensor, sequence, two-input), shortened and trained
with ``ray job submit`` on the session's cluster for ``test_models``, and each registered
version batch-scored with ``tandem batch-predict``.

The jobs start early, through the ``zoo_jobs`` fixture (tests/conftest.py): while the
modules that run clusters of their own leave the session's cluster idle, it trains and
scores them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from private_cluster import REPO

BIN = Path(sys.executable).parent
SPECS = {  # shipped spec → the validation accuracy its short test run must reach
    "digits-image": 0.85,
    "digits-tensor": 0.85,
    "digits-sequence": 0.5,
    "digits-two-input": 0.85,
}
EPOCHS = 6


REGISTERED_TIMEOUT_S = 900.0


def model_name(spec: str) -> str:
    return f"m-{spec}"


def submit(spec: str, folder: Path, env: dict[str, str]) -> str:
    """``ray job submit --no-wait`` of a shipped spec, shortened; the submission id."""
    data = yaml.safe_load((REPO / "jobs" / "specs" / f"{spec}.yaml").read_text())
    data["name"] = model_name(spec)
    data["train"]["epochs"] = EPOCHS
    # One worker each: the train pool is one core here, so four jobs share it anyway;
    # the two-input job keeps two (DDP with the user's package on every worker).
    if spec != "digits-two-input":
        data["scaling"]["num_workers"] = 1
    path = folder / f"{spec}.yaml"
    path.write_text(yaml.safe_dump(data))
    command = [str(BIN / "ray"), "job", "submit", "--no-wait", "--working-dir", str(REPO)]
    if not data["model"]["factory"].startswith("tandem."):
        modules = {"py_modules": [str(REPO / "examples" / "my_models")]}
        command += ["--runtime-env-json", json.dumps(modules)]
    done = subprocess.run(
        [*command, "--", "python", "jobs/train.py", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = re.search(r"raysubmit_\w+", done.stdout + done.stderr)
    assert found, done.stdout[-2000:]
    return found.group(0)


class Zoo:
    """The four training jobs, submitted at once, and a thread that submits each version's
    batch scoring of the validation split as soon as the version is registered.

    The thread touches no Ray state of this process (tests switch its connection and auth
    between clusters): it reads the registry's files and runs the ``tandem`` CLI with the
    environment taken when the zoo started."""

    def __init__(self, home: Path, storage: str, folder: Path, env: dict[str, str]) -> None:
        self.training = {spec: submit(spec, folder, env) for spec in SPECS}
        self.scoring: dict[str, tuple[str, Path]] = {}
        """spec → (batch job's submission id, its output folder)."""
        self.problem: str | None = None
        self._thread = threading.Thread(
            target=self._score_each, args=(home, storage, env), daemon=True
        )
        self._thread.start()

    def _score_each(self, home: Path, storage: str, env: dict[str, str]) -> None:
        from tandem.registry import Registry

        registry = Registry(storage)
        source = home / "data" / "digits" / "validation.parquet"
        deadline = time.monotonic() + REGISTERED_TIMEOUT_S
        for spec in SPECS:
            while model_name(spec) not in registry.models():
                if time.monotonic() > deadline:
                    self.problem = f"{model_name(spec)} was never registered"
                    return
                time.sleep(1)
            output = home / "scored" / spec
            command = ["batch-predict", model_name(spec), str(source), str(output), "--no-follow"]
            done = subprocess.run(
                [str(BIN / "tandem"), *command],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )
            found = re.search(r"raysubmit_\w+", done.stdout)
            if done.returncode != 0 or not found:
                self.problem = f"batch-predict {spec}: {done.stdout[-1000:]}{done.stderr[-2000:]}"
                return
            self.scoring[spec] = (found.group(0), output)

    def batch_jobs(self) -> dict[str, tuple[str, Path]]:
        """Each spec's batch job (submission id, output folder), once all are submitted."""
        self._thread.join(timeout=REGISTERED_TIMEOUT_S)
        assert self.problem is None and not self._thread.is_alive(), self.problem
        return self.scoring
