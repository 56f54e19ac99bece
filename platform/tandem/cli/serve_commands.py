"""``tandem deploy | undeploy | deployments | promote | rollback``: serving from the shell."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tandem.cli.app import app, client, console, err_console


@app.command()
def deploy(
    spec: Path = typer.Argument(..., help="Deployment spec or Serve config file (YAML)."),
) -> None:
    """Deploy (or update) models; returns once their replicas serve."""
    for done in client().deploy(spec):
        versions = ", ".join(str(v) for v in done.loaded)
        console.print(
            f"deployed {done.model}: default v{done.default} (live: {versions}) at {done.url}",
            highlight=False,
        )


@app.command()
def undeploy(name: str = typer.Argument(..., help="Model name of the deployment.")) -> None:
    """Remove a model's deployment."""
    client().undeploy(name)
    console.print(f"undeployed {name}", highlight=False)


@app.command()
def deployments() -> None:
    """List deployed models and the versions they serve."""
    table = Table(title="deployments")
    for column in ("model", "status", "default", "canary", "shadow", "live versions"):
        table.add_column(column)
    for found in client().deployments():
        canary, shadow = found.canary, found.shadow
        table.add_row(
            found.model,
            found.status,
            str(found.default),
            "-" if canary is None else f"v{canary.version} ({canary.weight}%)",
            "-" if shadow is None else f"v{shadow.version} ({shadow.share}% mirrored)",
            ", ".join(str(v) for v in found.served),
        )
    console.print(table)


@app.command()
def promote(
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., help="Version to promote."),
    alias: str = typer.Option("production", help="Alias to move."),
    if_better: str | None = typer.Option(
        None,
        "--if-better",
        help="Refuse unless the version beats the alias's current one on this metric "
        "(accuracy, loss, rmse, mae or their val_ names), both scored on the same data: "
        "the newest `tandem evaluate` of the two, else the version's validation set. "
        "A tie keeps the current version.",
    ),
    min_gain: float = typer.Option(
        0.0, "--min-gain", min=0.0, help="With --if-better: the least improvement that counts."
    ),
) -> None:
    """Point an alias at a version; a live deployment that uses it follows."""

    def say(line: str) -> None:
        err_console.print(line, highlight=False, markup=False)

    moved = client().promote(name, version, alias, if_better, min_gain=min_gain, say=say)
    was = "unset" if moved.previous is None else f"v{moved.previous}"
    console.print(f"{name}: {alias} → v{version} (was {was})", highlight=False)


@app.command()
def rollback(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option("production", help="Alias to move back."),
) -> None:
    """Return an alias to the version it named before."""
    moved = client().rollback(name, alias)
    console.print(f"{name}: {alias} v{moved.previous} → v{moved.version}", highlight=False)
