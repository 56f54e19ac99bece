"""``tandem data``, ``tandem train``, ``tandem jobs``, ``tandem logs``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.table import Table

from tandem.cli.app import app, client, console
from tandem.errors import JobFailedError

if TYPE_CHECKING:
    from tandem.sdk import Job

ResultT = TypeVar("ResultT")

data_app = typer.Typer(help="Write the datasets that ship with Tandem.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("digits")
def digits(
    uri: str = typer.Argument(
        "data/digits", help="fsspec URI; relative paths are under TANDEM_HOME."
    ),
) -> None:
    """Write scikit-learn's handwritten digits as Parquet (train + validation)."""
    written = client().write_digits(uri)
    console.print(
        f"wrote {written.train_rows} train and {written.validation_rows} validation rows to "
        f"{written.uri}",
        highlight=False,
    )


def follow(job: Job[ResultT]) -> ResultT:
    """Print the job's logs as they arrive; its result, or exit 1 if it failed."""
    for chunk in job.logs(follow=True):
        print(chunk, end="", flush=True)
    try:
        return job.wait()
    except JobFailedError as error:
        raise typer.Exit(1) from error


@app.command()
def train(
    spec_file: Path = typer.Argument(..., help="training job spec (YAML)"),
    resume: bool = typer.Option(False, "--resume", help="Continue the last unfinished run."),
    no_follow: bool = typer.Option(False, "--no-follow", help="Submit and return."),
) -> None:
    """Check the spec and data, submit the job through the Ray Jobs API, follow its logs."""
    job = client().submit(spec_file, resume=resume)
    console.print(f"submitted {job.submission_id}", highlight=False)
    if not no_follow:
        follow(job)


@app.command("jobs")
def list_jobs(as_json: bool = typer.Option(False, "--json")) -> None:
    """List jobs submitted to the cluster."""
    found = client().jobs()
    if as_json:
        print(json.dumps([vars(j) for j in found], indent=2))
        return
    table = Table()
    for column in ("submission id", "status", "entrypoint"):
        table.add_column(column)
    for job in found:
        table.add_row(job.submission_id, job.status, job.entrypoint[:80])
    console.print(table)


@app.command()
def logs(
    submission_id: str,
    follow_logs: bool = typer.Option(False, "--follow", "-f", help="Stream until the job ends."),
) -> None:
    """Print a job's logs."""
    job = client().job(submission_id)
    if follow_logs:
        follow(job)
    else:
        print(job.logs(), end="")
