"""The root ``tandem`` command: the one ``Client`` of a command and the one error handler.

Every command runs inside ``TandemGroup.invoke``: it builds the command's ``Client`` on
first use (``client()``), closes it at the end, and turns Tandem's own errors into a
message and exit code 1. ``typer.testing.CliRunner`` and the ``tandem`` script both go
through it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from tandem.errors import SpecError, TandemError

if TYPE_CHECKING:
    from tandem.sdk import Client

console = Console()
err_console = Console(stderr=True)


class Command:
    """One command line's state: its ``Client``, built from the environment when a
    command first asks for it (``tandem validate`` and ``--help`` never do)."""

    def __init__(self) -> None:
        self._client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            # Imported here: the SDK loads Ray and torch, which `--help` and `validate`
            # never need.
            from tandem.sdk import Client

            self._client = Client()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


_running: ContextVar[Command] = ContextVar("tandem_command")


def client() -> Client:
    """The running command's ``Client`` (one per command line)."""
    return _running.get().client()


def report(error: TandemError) -> None:
    """Tandem's own error as a message on stderr: a spec's source and one line per
    problem, or the error's text."""
    if isinstance(error, SpecError):
        err_console.print(f"[red]error:[/red] {error.source}", highlight=False)
        for problem in error.problems:
            err_console.print(f"  {problem}", highlight=False, markup=False)
    else:
        err_console.print(f"[red]error:[/red] {error}", highlight=False)


class TandemGroup(TyperGroup):
    """The root group: every subcommand (nested groups included) runs inside ``invoke``."""

    # ``ctx`` is the click Context that typer vendors (not importable under a public name).
    def invoke(self, ctx: Any) -> Any:
        command = Command()
        token = _running.set(command)
        try:
            return super().invoke(ctx)
        except TandemError as error:
            report(error)
            raise typer.Exit(1) from None
        finally:
            command.close()
            _running.reset(token)


app = typer.Typer(
    name="tandem",
    cls=TandemGroup,
    help="Train and serve PyTorch models on one Ray cluster with separate pools.\n\n"
    "Which cluster: the embedded single-machine one under TANDEM_HOME (`tandem up` / "
    "`tandem down`), or a real one that Ray's launcher started (`ray up cluster.yaml`, "
    "`ray down cluster.yaml`) named by RAY_ADDRESS (GCS host:6379 or dashboard "
    "http://host:8265) plus its token (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
