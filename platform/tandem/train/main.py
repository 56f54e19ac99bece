"""Entry point of a training job (what ``jobs/train.py`` and ``tandem train`` run).

python -m tandem.train.main SPEC.yaml [--resume]
python -m tandem.train.main --spec-json '{...}' [--resume]
"""

from __future__ import annotations

import argparse
import json
import sys

from tandem.cluster import current_submission_id, run_at_throughput_priority
from tandem.errors import TandemError
from tandem.specs import TrainJobSpec, load
from tandem.train.job import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Tandem training job.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("spec", nargs="?", help="training job spec (YAML)")
    source.add_argument("--spec-json", help="the spec as JSON (used by `tandem train`)")
    parser.add_argument("--resume", action="store_true", help="continue the last unfinished run")
    args = parser.parse_args(argv)
    run_at_throughput_priority()  # this driver shares the head's core with the request path
    try:
        spec = load(TrainJobSpec, json.loads(args.spec_json) if args.spec_json else args.spec)
        result = run(spec, resume=args.resume, submission_id=current_submission_id())
    except TandemError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    manifest = result.manifest
    score = {k: round(v, 4) for k, v in manifest.metrics.items() if k.startswith("val_")}
    print(f"registered {manifest.name} version {manifest.version} {score}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
