"""The ``tandem`` command line: a thin layer over the SDK's calls."""

from tandem.cli import (  # noqa: F401  (registers commands)
    cluster_commands,
    delivery_commands,
    evaluate_commands,
    model_commands,
    predict_commands,
    quickstart,
    run_commands,
    serve_commands,
    spec_commands,
    train_commands,
)
from tandem.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
