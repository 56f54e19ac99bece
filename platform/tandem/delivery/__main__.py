"""A delivery as a Ray job: ``ray job submit -- python -m tandem.delivery SPEC.yaml``.

Exits 0 when the candidate was promoted, 1 when it was rolled back or failed (the
reason is the last line of the job's log and is stored with the delivery).
"""

from __future__ import annotations

import argparse
import sys

from tandem.delivery.pipeline import deliver
from tandem.errors import TandemError
from tandem.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Tandem delivery.")
    parser.add_argument("spec", help="delivery spec (YAML)")
    args = parser.parse_args(argv)
    try:
        record = deliver(args.spec, Settings.from_env(), say=lambda line: print(line, flush=True))
    except TandemError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0 if record.outcome == "promoted" else 1


if __name__ == "__main__":
    sys.exit(main())
