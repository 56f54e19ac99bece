"""``tandem validate``: check spec files without touching a cluster."""

from __future__ import annotations

from pathlib import Path

import typer

from tandem.cli.app import app, console, err_console
from tandem.errors import SpecError
from tandem.specs import validate_file


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="Spec files (YAML).")) -> None:
    """Print `ok` per valid file; list every problem of an invalid one by field."""
    failed = False
    for path in files:
        try:
            kind = validate_file(path)
        except SpecError as error:
            failed = True
            err_console.print(f"{path}: invalid", highlight=False, markup=False)
            for problem in error.problems:
                err_console.print(f"  {problem}", highlight=False, markup=False)
            continue
        console.print(f"{path}: ok ({kind})", highlight=False, markup=False)
    if failed:
        raise typer.Exit(1)
