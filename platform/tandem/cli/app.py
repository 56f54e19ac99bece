"""The root ``tandem`` command and the error handling every subcommand shares."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from tandem.errors import SpecError, TandemError

app = typer.Typer(
    name="tandem",
    help="Train and serve PyTorch models on one Ray cluster with separate pools.\n\n"
    "Which cluster: the embedded single-machine one under TANDEM_HOME (`tandem up` / "
    "`tandem down`), or a real one that Ray's launcher started (`ray up cluster.yaml`, "
    "`ray down cluster.yaml`) named by RAY_ADDRESS (GCS host:6379 or dashboard "
    "http://host:8265) plus its token (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn Tandem's own errors into a message and exit code 1, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpecError as error:
            err_console.print(f"[red]error:[/red] {error.source}", highlight=False)
            for problem in error.problems:
                err_console.print(f"  {problem}", highlight=False, markup=False)
            raise typer.Exit(1) from None
        except TandemError as error:
            err_console.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
