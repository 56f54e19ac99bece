"""``tandem deploy | undeploy | deployments | promote | rollback``: serving from the shell."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tandem.cli.app import app, console, err_console, user_errors
from tandem.serve import deploy as deploy_app
from tandem.serve import deployments as list_deployments
from tandem.serve import endpoint as serve_endpoint
from tandem.serve import promote as promote_version
from tandem.serve import rollback as rollback_alias
from tandem.serve import undeploy as undeploy_app
from tandem.settings import Settings
from tandem.specs import deployment_specs


@app.command()
@user_errors
def deploy(
    spec: Path = typer.Argument(..., help="Deployment spec or Serve config file (YAML)."),
) -> None:
    """Deploy (or update) models; returns once their replicas serve."""
    settings = Settings.from_env()
    for parsed in deployment_specs(spec):
        done = deploy_app(parsed, settings)
        versions = ", ".join(str(v) for v in sorted(done.live.loaded()))
        console.print(
            f"deployed {parsed.model}: default v{done.live.default} (live: {versions}) at "
            f"{serve_endpoint(settings)}/v2/models/{parsed.model}",
            highlight=False,
        )


@app.command()
@user_errors
def undeploy(name: str = typer.Argument(..., help="Model name of the deployment.")) -> None:
    """Remove a model's deployment."""
    undeploy_app(name, Settings.from_env())
    console.print(f"undeployed {name}", highlight=False)


@app.command()
@user_errors
def deployments() -> None:
    """List deployed models and the versions they serve."""
    table = Table(title="deployments")
    for column in ("model", "status", "default", "canary", "shadow", "live versions"):
        table.add_column(column)
    for found in list_deployments(Settings.from_env()):
        canary, shadow = found.live.canary, found.live.shadow
        table.add_row(
            found.spec.model,
            found.status,
            str(found.live.default),
            "-" if canary is None else f"v{canary.version} ({canary.weight}%)",
            "-" if shadow is None else f"v{shadow.version} ({shadow.share}% mirrored)",
            ", ".join(str(v) for v in sorted(found.live.served())),
        )
    console.print(table)


@app.command()
@user_errors
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

    previous = promote_version(
        name, version, Settings.from_env(), alias, if_better, min_gain=min_gain, say=say
    )
    was = "unset" if previous is None else f"v{previous}"
    console.print(f"{name}: {alias} → v{version} (was {was})", highlight=False)


@app.command()
@user_errors
def rollback(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option("production", help="Alias to move back."),
) -> None:
    """Return an alias to the version it named before."""
    before, after = rollback_alias(name, Settings.from_env(), alias)
    console.print(f"{name}: {alias} v{before} → v{after}", highlight=False)
