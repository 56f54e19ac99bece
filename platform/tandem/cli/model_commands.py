"""``tandem models [show NAME [VERSION]]``: browse the model registry."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from tandem.cli.app import app, client, console

if TYPE_CHECKING:
    from tandem.registry import InputSchema, Manifest

models_app = typer.Typer(help="Browse the versioned model registry.", add_completion=False)
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def list_models(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List registered models with their latest version and aliases."""
    if ctx.invoked_subcommand is not None:
        return
    rows = client().models()
    if as_json:
        typer.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    if not rows:
        console.print(f"no models in {client().registry_uri}", highlight=False)
        return
    table = Table(title=f"models in {client().registry_uri}")
    for column in ("model", "latest", "versions", "aliases"):
        table.add_column(column)
    for row in rows:
        named = ", ".join(f"{alias} → v{version}" for alias, version in row.aliases.items())
        table.add_row(row.name, f"v{row.latest}", str(len(row.versions)), named or "-")
    console.print(table)


@models_app.command()
def show(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument("latest", help="Version number or alias."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored manifest.json."),
) -> None:
    """Show one version's manifest: task, inputs, metrics, weights and lineage."""
    manifest = client().get(name, version)
    if as_json:
        typer.echo(manifest.model_dump_json(indent=2))
        return
    aliases = [a for a, v in client().aliases(name).items() if v == manifest.version]
    show_manifest(manifest, aliases)


def describe_input(schema: InputSchema) -> str:
    """``image 'image' [1, 8, 8] float32 from column image, normalised`` and the like."""
    shape = "×".join(map(str, schema.shape))
    text = f"{schema.name} ({schema.kind} {shape} {schema.dtype}"
    if schema.kind == "tabular":
        shown = ", ".join(schema.features[:8]) + (", …" if len(schema.features) > 8 else "")
        text += f": {shown}"
    else:
        text += f" from column {schema.columns[0]}"
    if schema.vocab_size is not None:
        text += f", vocabulary {schema.vocab_size}"
    if schema.normalize == "fitted":
        text += ", normalised"
    return text + ")"


def show_manifest(manifest: Manifest, aliases: list[str]) -> None:
    named = f"  (aliases: {', '.join(aliases)})" if aliases else ""
    outputs = f"{manifest.out_features} outputs"
    if manifest.classes is not None:
        outputs += f", classes {manifest.classes}"
    lineage = manifest.lineage
    fields = {
        "registered": manifest.created_at,
        "task": f"{manifest.task}, {outputs}",
        "factory": f"{manifest.factory} {json.dumps(manifest.kwargs)}",
        "inputs": "; ".join(describe_input(schema) for schema in manifest.inputs),
        "metrics": ", ".join(f"{k} {v:.4g}" for k, v in sorted(manifest.metrics.items())) or "-",
        "weights": f"{manifest.weights.file}, {manifest.weights.bytes:,} bytes, "
        f"sha256 {manifest.weights.sha256}",
        "package": "-"
        if manifest.code is None
        else f"{manifest.code.package} ({manifest.code.file}, {manifest.code.bytes:,} bytes, "
        f"sha256 {manifest.code.sha256})",
        "run": f"{lineage.run_name} ({lineage.run_id}), checkpoint {lineage.checkpoint}",
        "code": f"{lineage.code_version}, ray {lineage.ray_version}, "
        f"torch {lineage.torch_version}, python {lineage.python_version}",
    }
    console.print(f"[bold]{manifest.name}[/bold] v{manifest.version}{named}", highlight=False)
    for label, value in fields.items():
        console.print(f"  {label:<11} {value}", highlight=False, markup=False, soft_wrap=True)
