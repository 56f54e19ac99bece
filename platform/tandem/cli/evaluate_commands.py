"""``tandem evaluate NAME VERSION``: score versions on the same held-out data, side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from tandem.cli.app import app, client, console

if TYPE_CHECKING:
    from tandem.evaluation import Evaluation


def best_versions(evaluation: Evaluation, metric: str) -> list[int]:
    """The versions with the best value of ``metric`` (several when they tie)."""
    from tandem.serve import lower_is_better  # loads torch: only when a command runs

    values = {v: evaluation.score(v)[metric] for v in evaluation.versions()}
    best = min(values.values()) if lower_is_better(metric) else max(values.values())
    return [v for v, value in values.items() if value == best]


def verdict(evaluation: Evaluation, metric: str) -> str:
    """One line: which version wins ``metric``, or that they tie."""
    from tandem.serve import lower_is_better

    direction = "lower" if lower_is_better(metric) else "higher"
    best = best_versions(evaluation, metric)
    if len(best) > 1:
        value = evaluation.score(best[0])[metric]
        return f"{metric}: tie at {value:.6g} ({direction} is better)"
    winner = best[0]
    others = ", ".join(
        f"v{v} {evaluation.score(v)[metric]:.6g}" for v in evaluation.versions() if v != winner
    )
    return (
        f"{metric}: v{winner} wins with {evaluation.score(winner)[metric]:.6g} "
        f"against {others} ({direction} is better)"
    )


def show_evaluation(evaluation: Evaluation) -> None:
    versions = evaluation.versions()
    metrics = sorted({m for v in versions for m in evaluation.score(v)})
    console.print(
        f"{evaluation.model}: {evaluation.rows:,} rows of {evaluation.data} "
        f"(label {evaluation.label!r}, evaluation {evaluation.id})",
        highlight=False,
        markup=False,
    )
    table = Table(title=f"{evaluation.model} on the same data")
    table.add_column("version")
    for metric in metrics:
        table.add_column(metric, justify="right")
    compared = len(versions) > 1
    best = {m: best_versions(evaluation, m) for m in metrics}
    for version in versions:
        role = "candidate" if version == evaluation.candidate else evaluation.against
        cells = []
        for metric in metrics:
            text = f"{evaluation.score(version)[metric]:.6g}"
            # The better value is marked; a tie marks nobody.
            cells.append(f"{text} *" if compared and best[metric] == [version] else text)
        table.add_row(f"v{version} ({role})", *cells)
    if compared:
        table.caption = "* the better value"
    console.print(table)
    if compared:
        for metric in metrics:
            console.print(verdict(evaluation, metric), highlight=False, markup=False)


@app.command()
def evaluate(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="Version (number or alias) to evaluate."),
    against: str = typer.Option(
        "production", "--against", help="Version or alias to compare with on the same data."
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="Parquet (file or folder, any fsspec URI) holding the inputs and the label; "
        "default: the version's validation set from its training spec.",
    ),
    label: str | None = typer.Option(
        None, "--label", help="Label column of --data (default: the training spec's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the stored evaluation record."),
) -> None:
    """Score a version and another on the same held-out data, in the batch pool.

    A measurement: it exits 0 whichever version wins (promote --if-better is the gate)."""
    evaluation = client().evaluate(name, version, against, data, label)
    if as_json:
        typer.echo(evaluation.model_dump_json(indent=2))
        return
    show_evaluation(evaluation)
