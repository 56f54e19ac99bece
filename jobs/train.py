"""Run a Tandem training job: `python jobs/train.py SPEC.yaml [--resume]`.

Works on the embedded cluster and through Ray's own CLI:
    ray job submit --working-dir . -- python jobs/train.py jobs/specs/digits-mlp.yaml
"""

from __future__ import annotations

import argparse
import os
import sys

from tandem.errors import TandemError
from tandem.specs import TrainJobSpec, load
from tandem.train import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", help="training job spec (YAML)")
    parser.add_argument("--resume", action="store_true", help="continue the last unfinished run")
    args = parser.parse_args()
    try:
        spec = load(TrainJobSpec, args.spec)
        result = run(
            spec, resume=args.resume, submission_id=os.environ.get("RAY_JOB_SUBMISSION_ID")
        )
    except TandemError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    manifest = result.manifest
    print(f"registered {manifest.name} version {manifest.version} metrics {manifest.metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
