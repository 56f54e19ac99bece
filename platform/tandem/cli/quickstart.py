"""``tandem quickstart``: the README's ``make demo`` from a fresh clone."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from tandem.cli.app import app, client, console

if TYPE_CHECKING:
    from tandem.sdk import QuickstartReport

# Of the training job's log, only the per-epoch lines tell a newcomer something.
PROGRESS_LINE = re.compile(r"epoch \d+/\d+ .*|registered .*")


class EpochLines:
    """Prints each progress line of the job's log once (worker lines can arrive twice)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, chunk: str) -> None:
        for match in PROGRESS_LINE.finditer(chunk):
            line = match.group(0).strip()
            if line not in self.seen:
                self.seen.add(line)
                console.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)


def show_report(report: QuickstartReport) -> None:
    load, accuracy = report.load, report.accuracy
    offline = report.manifest.metrics.get("val_accuracy", float("nan"))
    console.print(f"\n[bold]{report.manifest.name} v{report.manifest.version}[/bold] is live")
    for label, value in {
        "accuracy offline": f"{offline:.4f} (validation split, at training time)",
        "accuracy served": f"{accuracy.ratio:.4f} ({accuracy.correct}/{accuracy.requests} "
        "over HTTP)",
        "throughput": f"{load.requests_per_s:,.0f} req/s ({load.seconds:.0f} s steady, "
        "after a warm-up)",
        "latency": f"p50 {load.latency_ms(50):.1f} ms, p99 {load.latency_ms(99):.1f} ms",
        "took": f"{report.seconds:.0f}s",
    }.items():
        console.print(f"  {label:<17} {value}", highlight=False)
    console.print("\nTry it:", highlight=False)
    console.print(report.curl, highlight=False, markup=False, soft_wrap=True)
    console.print("\nThe cluster keeps running; stop it with `tandem down`.", highlight=False)


@app.command()
def quickstart() -> None:
    """Train, register, promote, deploy and load-test the digits MLP on the embedded cluster."""
    # Serve narrates every deployment step at INFO; here it would bury the report.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    from tandem.sdk import run_quickstart  # loads Ray and torch: only when it runs

    report = run_quickstart(
        client(),
        say=lambda line: console.print(f"[bold]›[/bold] {line}", highlight=False),
        show_logs=EpochLines(),
    )
    show_report(report)
