"""``tandem predict`` (online, over HTTP) and ``tandem batch-predict`` (a job in the batch pool)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from tandem.batch import BatchPredictSpec, parse_model_ref
from tandem.cli.app import app, client, console
from tandem.cli.train_commands import follow
from tandem.errors import SpecError
from tandem.specs import load

if TYPE_CHECKING:
    from tandem.sdk import Predictions

SHOWN_ROWS = 20


def read_rows(path: Path) -> pd.DataFrame | np.ndarray:
    """Rows from .csv / .parquet (columns by name) or .json (a list of rows or of records)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SpecError(str(path), ["--input: no such file"])
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return pd.DataFrame.from_records(data)
        return np.asarray(data, dtype=np.float32)
    raise SpecError(
        str(path), [f"--input: expected a .json, .csv or .parquet file (got {suffix!r})"]
    )


def show_predictions(outputs: Predictions) -> None:
    table = Table(title="predictions")
    table.add_column("row")
    if "label" in outputs:
        table.add_column("label")
        table.add_column("probability")
        best = outputs["probabilities"].max(axis=1)
        cells: list[tuple[str, ...]] = [
            (str(label), f"{p:.3f}") for label, p in zip(outputs["label"], best, strict=True)
        ]
    else:
        table.add_column("prediction")
        cells = [(f"{v:.6g}",) for v in outputs["prediction"]]
    for index, row in enumerate(cells[:SHOWN_ROWS]):
        table.add_row(str(index), *row)
    if len(cells) > SHOWN_ROWS:
        table.caption = f"{len(cells) - SHOWN_ROWS} more rows; use --json for all"
    console.print(table)


@app.command()
def predict(
    name: str = typer.Argument(..., help="Deployed model name."),
    input_file: Path = typer.Option(..., "--input", "-i", help="Rows: .json, .csv or .parquet."),
    version: str | None = typer.Option(None, help="Version or alias (default: the deployed one)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Score rows on the live HTTP endpoint (Open Inference Protocol v2)."""
    outputs = client().predict(name, read_rows(input_file), version=version)
    if as_json:
        typer.echo(json.dumps({k: v.tolist() for k, v in outputs.items()}))
    else:
        show_predictions(outputs)


@app.command("batch-predict")
def batch_predict(
    model: str = typer.Argument(..., help="NAME or NAME:VERSION (number or alias)."),
    input_uri: str = typer.Argument(..., help="Parquet file or folder (fsspec URI)."),
    output_uri: str = typer.Argument(..., help="Output folder (fsspec URI)."),
    id_column: str | None = typer.Option(None, help="Input column to carry into the output."),
    batch_size: int | None = typer.Option(None, help="Rows per scoring call (default 4096)."),
    max_actors: int | None = typer.Option(None, help="Largest scoring actor pool (default 2)."),
    gpus_per_actor: float | None = typer.Option(
        None, help="GPUs per scoring actor; > 0 scores on CUDA in the batch pool (default 0)."
    ),
    precision: str | None = typer.Option(
        None, help="fp32 (default), or fp16 / bf16 with --gpus-per-actor > 0."
    ),
    no_follow: bool = typer.Option(False, "--no-follow", help="Submit and return."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Score Parquet in the batch pool as a Ray job; writes Parquet with ids and outputs."""
    name, version = parse_model_ref(model)
    given = {
        "id_column": id_column,
        "batch_size": batch_size,
        "max_actors": max_actors,
        "gpus_per_actor": gpus_per_actor,
        "precision": precision,
    }
    fields = {"model": name, "version": version, "input": input_uri, "output": output_uri}
    spec = load(BatchPredictSpec, fields | {k: v for k, v in given.items() if v is not None})
    job = client().submit_batch(spec)
    console.print(f"submitted {job.submission_id}", highlight=False)
    if no_follow:
        return
    result = follow(job)
    if as_json:
        typer.echo(result.model_dump_json())
    else:
        console.print(
            f"{result.rows:,} rows scored by {result.model} v{result.version} at "
            f"{result.rows_per_s:,.0f} rows/s → {result.output}",
            highlight=False,
        )
