"""Lazy exports for a package face whose names live in modules too heavy to load eagerly.

A face lists every name in ``__all__`` as usual; names from a heavy module (one that loads
Ray or torch, say) are bound on first use through the module ``__getattr__`` this builds::

    if TYPE_CHECKING:
        from tandem.data.ingest import PreparedData
    else:
        __getattr__ = lazy_exports(__name__, {"tandem.data.ingest": ("PreparedData",)})

Type checkers see the real import and no ``__getattr__``, so a name missing from the face
is still an error for them rather than ``Any``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(package: str, table: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``table``'s names on first use.

    ``table`` maps a module's absolute name to the names the face takes from it; each
    name, once imported, is stored on the package so later lookups skip this function.
    Write ``table`` as a literal: tests/unit/test_import_contract.py reads it as imports.
    """
    home = {name: module for module, names in table.items() for name in names}
    assert len(home) == sum(len(names) for names in table.values()), f"{package}: a name twice"

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
