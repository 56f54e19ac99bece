"""The ``tandem`` command line: a thin layer over the SDK's calls."""

from tandem.cli import cluster_commands, model_commands, spec_commands  # noqa: F401  (registers commands)
from tandem.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
