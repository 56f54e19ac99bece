"""What software a run trained with: Tandem's source tree and the packages' versions.

No Ray or torch imports: versions come from the installed distributions' metadata.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from tandem.version import __version__

PACKAGES = ("ray", "torch", "numpy", "pyarrow", "pandas", "safetensors")
"""Distributions whose versions a version's lineage records (besides tandem and python)."""
GIT_TIMEOUT_S = 5


@dataclass(frozen=True)
class SourceTree:
    """The git state of the folder Tandem is imported from."""

    commit: str | None
    """Full commit hash; ``None`` when Tandem is not running from a git checkout."""
    dirty: bool | None
    """Uncommitted changes (tracked or new files) under Tandem's package folder."""

    @property
    def code_version(self) -> str:
        """Tandem's version, plus ``+g<short commit>`` from a checkout."""
        suffix = f"+g{self.commit[:7]}" if self.commit else ""
        return f"{__version__}{suffix}"


def source_tree() -> SourceTree:
    package = Path(__file__).resolve().parents[1]  # tandem/
    try:
        # An installed copy inside some repository (a venv in a checkout) is not tracked
        # by it: only a tracked package folder's commit describes the running code.
        _git(package, "ls-files", "--error-unmatch", "__init__.py")
        commit = _git(package, "rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return SourceTree(None, None)
    try:
        dirty: bool | None = bool(_git(package, "status", "--porcelain", "--", "."))
    except (OSError, subprocess.SubprocessError):
        dirty = None  # a slow status is no reason to lose the commit
    return SourceTree(commit, dirty)


def package_versions() -> dict[str, str]:
    """tandem, python and each of ``PACKAGES`` → its version."""
    found = {"tandem": __version__, "python": platform.python_version()}
    return found | {name: version(name) for name in PACKAGES}


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=True,
    ).stdout.strip()
