"""The zoo's four shipped specs (image, tensor, sequence, two-input), shortened and trained
with ``ray job submit`` on the session's cluster for ``test_models``.

The jobs start early, through the ``zoo_jobs`` fixture (tests/conftest.py): while the
modules that run clusters of their own leave the session's cluster idle, it trains them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
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
