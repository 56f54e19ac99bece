"""Which model to build: an import path of a factory returning ``nn.Module``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tandem.specs.base import Spec

FACTORY_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class ModelSpec(Spec):
    factory: str = Field(pattern=FACTORY_PATTERN)
    """``package.module:callable``; called with ``kwargs`` plus the input and output sizes."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the factory (JSON-serialisable: they go into the manifest)."""
