"""Entry point of a batch-inference job (what ``jobs/batch_predict.py`` and
``tandem batch-predict`` run).

python -m tandem.batch.main NAME[:VERSION] INPUT_URI OUTPUT_URI [--id-column COL]
    [--batch-size N] [--max-actors N] [--gpus-per-actor G] [--precision fp32|fp16|bf16]
python -m tandem.batch.main --spec-json '{...}'
"""

from __future__ import annotations

import argparse
import json
import sys

from tandem.batch.config import BatchPredictSpec, parse_model_ref
from tandem.batch.pipeline import run
from tandem.cluster import run_at_throughput_priority
from tandem.errors import TandemError
from tandem.settings import Settings
from tandem.specs import load


def report_progress(rows: int, seconds: float) -> None:
    print(f"scored {rows:,} rows in {seconds:.1f}s ({rows / seconds:,.0f} rows/s)", flush=True)


def spec_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> BatchPredictSpec:
    if args.spec_json:
        return load(BatchPredictSpec, json.loads(args.spec_json))
    if not (args.model and args.input and args.output):
        parser.error("give NAME[:VERSION] INPUT_URI OUTPUT_URI, or --spec-json")
    name, version = parse_model_ref(args.model)
    fields = {"model": name, "version": version, "input": args.input, "output": args.output}
    given = {
        "id_column": args.id_column or None,
        "batch_size": args.batch_size,
        "max_actors": args.max_actors,
        "gpus_per_actor": args.gpus_per_actor,
        "precision": args.precision,
    }
    return load(BatchPredictSpec, fields | {k: v for k, v in given.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score Parquet with a registered model.")
    parser.add_argument("model", nargs="?", help="NAME or NAME:VERSION (number or alias)")
    parser.add_argument("input", nargs="?", help="Parquet file or folder (fsspec URI)")
    parser.add_argument("output", nargs="?", help="output folder (fsspec URI)")
    parser.add_argument("--id-column", help="input column to carry into the output")
    parser.add_argument("--batch-size", type=int, help="rows per scoring call (default 4096)")
    parser.add_argument("--max-actors", type=int, help="largest scoring actor pool (default 2)")
    parser.add_argument(
        "--gpus-per-actor", type=float, help="GPUs per scoring actor; > 0 scores on CUDA"
    )
    parser.add_argument("--precision", help="fp32 (default), or fp16 / bf16 on a GPU")
    parser.add_argument("--spec-json", help="the whole spec as JSON (used by the SDK)")
    args = parser.parse_args(argv)
    run_at_throughput_priority()  # this driver shares the head's core with the request path
    try:
        result = run(spec_from_args(parser, args), Settings.from_env(), report_progress)
    except TandemError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"scored {result.rows:,} rows with {result.model} v{result.version} in "
        f"{result.seconds:.1f}s: {result.rows_per_s:,.0f} rows/s → {result.output}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
