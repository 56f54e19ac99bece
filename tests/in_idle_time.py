"""Run a command in CPU time nothing else wants: ``python tests/in_idle_time.py CMD...``.

``make test`` runs mypy and the unit tier this way beside the cluster tier. The command
runs on the machine's last core (the embedded cluster gives the serve pool the last cores,
``tandem.cluster.layout.split_cores``: the train pool's core is the suite's bottleneck,
the serve pool's sits idle while the suite trains), in a session of its own whose
scheduling group has the lowest weight, in Linux's idle scheduling class (the same
treatment as the serve node's support processes, ``tandem.cluster.local``).
"""

from __future__ import annotations

import os
import sys

LOWEST_GROUP_NICENESS = 19


def main(command: list[str]) -> None:
    os.setsid()
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    from tandem.cluster.local import lower_group_priority  # Ray's import, in idle time

    lower_group_priority(LOWEST_GROUP_NICENESS)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
