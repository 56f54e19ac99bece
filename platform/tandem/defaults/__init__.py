"""Files Tandem ships inside the package, so an installed Tandem has them without a checkout.

``cluster.yaml`` is the pools the embedded cluster mirrors when no cluster file is at hand:
a copy of the repository's own, which users pass to ``ray up``;
tests/unit/test_package_data.py keeps the two equal.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from importlib.resources import as_file, files
from pathlib import Path


def cluster_file() -> AbstractContextManager[Path]:
    """The default cluster file, as a path on disk while the context is open."""
    return as_file(files(__name__) / "cluster.yaml")


__all__ = ["cluster_file"]
