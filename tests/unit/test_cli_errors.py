"""One handler, on the root command, turns Tandem's own errors into a message and exit
code 1 for every ``tandem`` command, nested groups included; and the CLI starts without
loading Ray or torch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from tandem.cli import app
from tandem.errors import NotFoundError, SpecError

REPO = Path(__file__).resolve().parents[2]


def runnable(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command that runs code of its own: the leaves, and groups with a callback
    that runs without a subcommand (``tandem models``)."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            if command.invoke_without_command and command.callback is not None:
                yield (*path, name), command
            yield from runnable(command, (*path, name))
        else:
            yield (*path, name), command


def failing(error: Exception) -> Any:
    def callback(*args: Any, **kwargs: Any) -> None:
        raise error

    return callback


def test_every_command_has_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    root = typer.main.get_command(app)
    found = list(runnable(root))
    assert len(found) >= 25, [path for path, _ in found]
    for path, command in found:
        callback = command.callback
        command.callback = failing(NotFoundError(f"nothing named {'-'.join(path)}"))
        for param in command.params:
            param.required = False
        code = root.main(list(path), prog_name="tandem", standalone_mode=False)
        command.callback = callback  # a group's callback also runs before its subcommands
        captured = capsys.readouterr()
        assert code == 1, path
        assert f"error: nothing named {'-'.join(path)}" in captured.err, path
        assert "Traceback" not in captured.err + captured.out, path


def test_a_spec_error_lists_its_problems(capsys: pytest.CaptureFixture[str]) -> None:
    root = typer.main.get_command(app)
    deploy = dict(runnable(root))[("deploy",)]
    deploy.callback = failing(SpecError("d.yaml", ["replicas: must be ≥ 1 (got 0)"]))
    assert root.main(["deploy", "d.yaml"], prog_name="tandem", standalone_mode=False) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: d.yaml",
        "  replicas: must be ≥ 1 (got 0)",
    ]


def test_help_and_validate_load_neither_ray_nor_torch() -> None:
    """The SDK (Ray, torch) is imported when a command first asks for its Client."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from tandem.cli import app\n"
        "for args in (['--help'], ['validate', 'deployments/digits-mlp.yaml']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "loaded = {'ray', 'torch'} & set(sys.modules)\n"
        "assert not loaded, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
