"""``tandem deliver SPEC`` and ``tandem deliveries NAME [ID]``: automatic, guarded rollout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from tandem.cli.app import app, client, console
from tandem.errors import NotFoundError

if TYPE_CHECKING:
    from tandem.delivery import DeliveryRecord


@app.command()
def deliver(
    spec: Path = typer.Argument(..., help="Delivery spec (YAML)."),
) -> None:
    """Take a candidate from training to an alias, rolling back at the first failed guard.

    Trains or picks the candidate, evaluates it, shadows it, canaries it and promotes it.
    Exit code 0 only when the candidate was promoted."""

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    record = client().deliver(spec, say=say)
    if record.outcome != "promoted":
        raise typer.Exit(1)


@app.command()
def deliveries(
    name: str = typer.Argument(..., help="Model name."),
    delivery_id: str | None = typer.Argument(None, help="One delivery's id: show its steps."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored records."),
) -> None:
    """List a model's deliveries (outcome and reason), or one delivery's steps."""
    records = client().deliveries(name)
    if delivery_id is not None:
        records = [r for r in records if r.id == delivery_id]
        if not records:
            raise NotFoundError(f"model {name!r} has no delivery {delivery_id!r}")
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
    elif delivery_id is not None:
        show_steps(records[0])
    else:
        table = Table(title=f"deliveries of {name}")
        for column in ("delivery", "live", "candidate", "outcome", "reason"):
            table.add_column(column)
        for r in records:
            candidate = "-" if r.candidate is None else f"v{r.candidate}"
            table.add_row(r.id, f"v{r.live}", candidate, r.outcome, r.reason)
        console.print(table)


def show_steps(record: DeliveryRecord) -> None:
    candidate = "-" if record.candidate is None else f"v{record.candidate}"
    console.print(
        f"{record.id}: {record.model} {record.alias} v{record.live} ← {candidate}, "
        f"{record.outcome}: {record.reason}",
        highlight=False,
        markup=False,
    )
    table = Table()
    for column in ("step", "seconds", "passed", "reason"):
        table.add_column(column)
    for step in record.steps:
        table.add_row(step.step, f"{step.seconds:.1f}", "yes" if step.passed else "no", step.reason)
    console.print(table)
