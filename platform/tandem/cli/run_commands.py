"""``tandem runs [NAME]``, ``runs show RUN``, ``runs compare RUN...`` and ``tandem reproduce``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from tandem.cli.app import app, client, console
from tandem.cli.train_commands import follow

if TYPE_CHECKING:
    from tandem.train import Reproduction, RunRecord, RunSummary

EPOCH_COLUMNS = {
    "train_loss": "train loss",
    "val_loss": "val loss",
    "val_accuracy": "val accuracy",
    "val_rmse": "val rmse",
    "samples_per_s": "samples/s",
    "data_wait_fraction": "data wait",
}
"""Per-epoch metric → column heading, in table order."""


class RunsGroup(TyperGroup):
    """``tandem runs`` lists runs: arguments that name no subcommand (a job name,
    ``--json``) go to the hidden ``list`` command."""

    # ``ctx`` is the click Context that typer vendors (not importable under a public name).
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] != "--help"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


runs_app = typer.Typer(
    cls=RunsGroup,
    help="Look at training runs: `tandem runs [NAME] [--json]` lists them (of job NAME "
    "only), `show` one run epoch by epoch, `compare` several side by side.",
    add_completion=False,
)
app.add_typer(runs_app, name="runs")


@runs_app.command("list", hidden=True)
def list_runs(
    name: str | None = typer.Argument(None, help="Only this job's runs."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List training runs, newest last."""
    rows = client().runs(name)
    if as_json:
        typer.echo(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
        return
    where = f"{client().settings.storage_uri}/runs"
    if not rows:
        console.print(f"no runs{f' of {name}' if name else ''} in {where}", highlight=False)
        return
    table = Table(title=f"runs in {where}")
    table.add_column("run", no_wrap=True)
    for column in ("model", "status", "epochs", "final metric", "started", "duration"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.run_id,
            row.model,
            status_text(row),
            str(row.epochs),
            score_text(row.metrics),
            when(row.started_at),
            duration(row.duration_s),
        )
    console.print(table)


@runs_app.command()
def show(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (see `tandem runs`)."),
    as_json: bool = typer.Option(False, "--json", help="Status, spec and epochs as JSON."),
) -> None:
    """Show one run: its status, the settings it trained with and each epoch's metrics."""
    record = client().run(run_id)
    if as_json:
        typer.echo(record.model_dump_json(indent=2))
        return
    summary = record.summary
    fields = {
        "model": summary.model,
        "status": status_text(summary),
        "started": when(summary.started_at),
        "finished": when(summary.finished_at),
        "duration": duration(summary.duration_s),
        "job": summary.submission_id or "-",
        "metrics": metrics_text(summary.metrics),
        **spec_settings(record.spec),
    }
    if summary.error:
        fields["error"] = summary.error
    console.print(f"[bold]{summary.run_id}[/bold]", highlight=False)
    for label, value in fields.items():
        console.print(f"  {label:<10} {value}", highlight=False, markup=False, soft_wrap=True)
    if record.epochs:
        console.print(epoch_table(record))


@runs_app.command()
def compare(
    run_ids: list[str] = typer.Argument(..., metavar="RUN...", help="Two or more run ids."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also write the runs' training curves to this HTML file."
    ),
) -> None:
    """Compare runs: final metrics and settings side by side, curves with --plot."""
    records = client().compare_runs(run_ids, plot)
    table = Table()
    table.add_column("")
    for record in records:
        table.add_column(record.run_id)
    metrics = sorted({k for r in records for k in r.summary.metrics if k != "epoch"})
    rows: dict[str, list[str]] = {
        "model": [r.summary.model for r in records],
        "status": [status_text(r.summary) for r in records],
        "epochs": [str(r.summary.epochs) for r in records],
        **{k: [number(r.summary.metrics.get(k)) for r in records] for k in metrics},
        "duration": [duration(r.summary.duration_s) for r in records],
    }
    for label in ("lr", "batch size", "seed", "workers"):
        rows[label] = [spec_settings(r.spec).get(label, "-") for r in records]
    for label, values in rows.items():
        table.add_row(label, *values)
    console.print(table)
    if plot is not None:
        console.print(f"curves written to {plot}", highlight=False)


@app.command()
def reproduce(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="Version number or alias to reproduce."),
    no_follow: bool = typer.Option(False, "--no-follow", help="Wait without printing logs."),
) -> None:
    """Train a version again from its recorded spec, data and seed; compare the result."""
    job = client().reproduce(name, version, wait=False)
    console.print(f"submitted {job.submission_id}", highlight=False)
    show_reproduction(job.wait() if no_follow else follow(job))


def show_reproduction(result: Reproduction) -> None:
    compared = result.comparison
    lines = [f"reproduced {result.original.name} v{compared.a} as v{compared.b}"]
    if compared.weights_identical:
        lines.append("weights: identical")
    elif compared.mismatch is not None:
        lines.append(f"weights: differ, {compared.mismatch}")
    else:
        lines.append(
            f"weights: differ, largest difference {compared.max_abs_diff:.2g} in "
            f"{compared.max_diff_tensor}"
        )
    if compared.metrics_identical:
        lines.append("metrics: identical")
    else:
        lines.append("metrics: differ")
        for key, (a, b) in compared.differing_metrics.items():
            lines.append(f"  {key}: {number(a)} (v{compared.a}) → {number(b)} (v{compared.b})")
    for line in lines:
        console.print(line, highlight=False, markup=False)


def epoch_table(record: RunRecord) -> Table:
    shown = [k for k in EPOCH_COLUMNS if any(k in row for row in record.epochs)]
    table = Table()
    table.add_column("epoch")
    for key in shown:
        table.add_column(EPOCH_COLUMNS[key], justify="right")
    for row in record.epochs:
        values = [
            f"{100 * row[k]:.1f}%" if k == "data_wait_fraction" and k in row else number(row.get(k))
            for k in shown
        ]
        table.add_row(str(int(row["epoch"]) + 1), *values)
    return table


def spec_settings(spec: dict[str, Any] | None) -> dict[str, str]:
    """The settings of a run's spec worth a glance (empty for runs without a kept spec)."""
    if spec is None:
        return {}
    train, scaling, dataset = spec["train"], spec["scaling"], spec["dataset"]
    workers = f"{scaling['num_workers']}{' (GPU)' if scaling.get('use_gpu') else ''}"
    return {
        "data": f"{dataset['train']}"
        + (f", validation {dataset['validation']}" if dataset.get("validation") else ""),
        "factory": f"{spec['model']['factory']} {json.dumps(spec['model'].get('kwargs', {}))}",
        "epochs": str(train["epochs"]),
        "optimizer": str(train["optimizer"]),
        "lr": f"{train['lr']:g}",
        "batch size": str(train["batch_size"]),
        "seed": str(train["seed"]),
        "workers": workers,
    }


def status_text(summary: RunSummary) -> str:
    return f"{summary.status} (v{summary.version})" if summary.version else summary.status


def metrics_text(metrics: dict[str, float]) -> str:
    """``train_loss 0.1, val_accuracy 0.9722 (epoch 10)``: the epoch counted from 1."""
    keys = sorted(k for k in metrics if k != "epoch")
    text = ", ".join(f"{k} {metrics[k]:.4g}" for k in keys) or "-"
    return text + (f" (epoch {int(metrics['epoch']) + 1})" if "epoch" in metrics and keys else "")


def score_text(metrics: dict[str, float]) -> str:
    """The validation metric that ranks checkpoints: ``val_accuracy 0.9722``."""
    for key in ("val_accuracy", "val_rmse", "val_loss"):
        if key in metrics:
            return f"{key} {metrics[key]:.4g}"
    return "-"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def when(iso: str | None) -> str:
    """A UTC ISO time as ``2025-01-31 14:05`` (UTC)."""
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"
