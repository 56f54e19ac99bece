"""Files Tandem ships inside the package, so an installed Tandem has them without a checkout.

``cluster.yaml`` is the pools the embedded cluster mirrors when no cluster file is at hand;
``recipes/`` holds what ``tandem quickstart`` trains and deploys, at the paths the repository
keeps them (``jobs/specs/…``, ``deployments/…``). Each is a copy of the repository's own file,
which users pass to ``ray up``, ``ray job submit`` and ``serve deploy``;
tests/unit/test_package_data.py keeps the two equal.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from importlib.resources import as_file, files
from pathlib import Path


def cluster_file() -> AbstractContextManager[Path]:
    """The default cluster file, as a path on disk while the context is open."""
    return as_file(files(__name__) / "cluster.yaml")


def recipe(path: str) -> AbstractContextManager[Path]:
    """A shipped recipe by its repository path (``jobs/specs/digits-mlp.yaml``), as a path on
    disk while the context is open."""
    return as_file(files(__name__).joinpath("recipes", *path.split("/")))


__all__ = ["cluster_file", "recipe"]
