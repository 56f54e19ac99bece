"""The model contract: ``module:factory`` returning an ``nn.Module``.

The factory is called as ``factory(in_features=F, out_features=C, **kwargs)``.
The module maps a float32 batch ``[N, F]`` (already normalised) to ``[N, C]``:
class logits for classification, ``C = 1`` for regression.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from tandem.errors import SpecError


def resolve_factory(path: str, source: str = "model.factory") -> Callable[..., nn.Module]:
    """Import ``package.module:callable``; a ``SpecError`` naming the field if it fails."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SpecError(
            source, [f"model.factory: cannot import module {module_name!r}: {error} (got {path!r})"]
        ) from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise SpecError(
            source,
            [f"model.factory: {module_name} has no callable {attribute!r} (got {path!r})"],
        )
    return factory


def build_model(
    factory: str, kwargs: dict[str, Any], in_features: int, out_features: int
) -> nn.Module:
    """Build the model and check the factory kept the contract."""
    module = resolve_factory(factory)(in_features=in_features, out_features=out_features, **kwargs)
    if not isinstance(module, nn.Module):
        raise SpecError(
            "model.factory",
            [f"model.factory: {factory} must return a torch.nn.Module (got {type(module)!r})"],
        )
    return module
