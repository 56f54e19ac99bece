"""Where CPU time went: each thread's CPU time and run-queue wait, from Linux's
``/proc/<pid>/task/<tid>/schedstat``, named by process."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

Thread = tuple[int, int]  # (pid, tid)


def allowed_cores(pid: int) -> set[int]:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)
    assert match
    cores: set[int] = set()
    for part in match.group(1).split(","):
        low, _, high = part.partition("-")
        cores.update(range(int(low), int(high or low) + 1))
    return cores


def process_label(pid: int, home_cores: set[int]) -> str:
    """The process's name; ``*`` marks one that may also run off ``home_cores`` (its time
    may not have been spent there)."""
    argv = [
        arg.decode(errors="replace")
        for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    ]
    name = Path(argv[0]).name
    scripts = [arg for arg in argv[1:] if arg and not arg.startswith("-")]
    if name.startswith("python") and "-c" in argv:
        name += " -c"
    elif name.startswith("python") and scripts:  # name the script or module it runs
        name = Path(scripts[0]).name
    return f"{name}[{pid}]" + ("" if allowed_cores(pid) <= home_cores else "*")


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def read_threads(
    pids: list[int], labels: dict[Thread, str], home_cores: set[int]
) -> dict[Thread, tuple[int, int]]:
    """Each thread's (CPU ns, run-queue wait ns) so far; names new threads in ``labels``
    (``process/thread``)."""
    threads: dict[Thread, tuple[int, int]] = {}
    for pid in pids:
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                key = (pid, int(task))
                run, wait, _ = Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()
                threads[key] = (int(run), int(wait))
                if key not in labels:
                    comm = Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
                    labels[key] = f"{process_label(pid, home_cores)}/{comm}"
        except (OSError, ValueError):
            continue  # exited while being read
    return threads


def per_process(
    before: dict[Thread, tuple[int, int]],
    after: dict[Thread, tuple[int, int]],
    labels: dict[Thread, str],
) -> dict[str, tuple[float, float]]:
    """Each process's (CPU ms, run-queue wait ms) between two readings; threads that
    started in between count from zero, those that ended in between are lost."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for key, (run, wait) in after.items():
        run_before, wait_before = before.get(key, (0, 0))
        process = labels[key].split("/")[0]
        totals[process][0] += (run - run_before) / 1e6
        totals[process][1] += (wait - wait_before) / 1e6
    return {process: (run, wait) for process, (run, wait) in totals.items()}
