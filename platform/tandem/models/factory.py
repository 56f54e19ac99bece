"""The model contract: ``module:factory`` returning an ``nn.Module``.

The factory is called as ``factory(out_features=C, inputs={...}, **kwargs)`` when it has an
``inputs`` parameter (or ``**kwargs``): ``inputs`` maps each input's name, in ``forward``
order, to plain data — ``{"kind": "image", "shape": [3, 32, 32], "dtype": "float32"}``,
plus ``"vocab_size"`` for sequences — so a user's factory needs no Tandem import. A
factory with an ``in_features`` parameter instead gets ``in_features=F`` and works when
the model has exactly one tabular or tensor input (its ``F`` values, flattened).

``forward`` receives one tensor per input, positionally, batch axis first, and returns
``[N, C]``: class logits for classification, the predicted values for regression.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from tandem.errors import SpecError
from tandem.registry import InputSchema

InputsInfo = dict[str, dict[str, Any]]


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


def inputs_info(inputs: list[InputSchema]) -> InputsInfo:
    """What the factory is told about the inputs: plain dicts, in ``forward`` order."""
    info: InputsInfo = {}
    for schema in inputs:
        entry: dict[str, Any] = {
            "kind": schema.kind,
            "shape": list(schema.shape),
            "dtype": schema.dtype,
        }
        if schema.vocab_size is not None:
            entry["vocab_size"] = schema.vocab_size
        info[schema.name] = entry
    return info


def takes_flat_features(factory: Callable[..., nn.Module]) -> bool:
    """Whether the factory follows the ``in_features`` form of the contract."""
    parameters = inspect.signature(factory).parameters
    return "in_features" in parameters and "inputs" not in parameters


def build_model(
    factory: str, kwargs: dict[str, Any], inputs: list[InputSchema], out_features: int
) -> nn.Module:
    """Build the model and check the factory kept the contract."""
    make = resolve_factory(factory)
    if takes_flat_features(make):
        if len(inputs) != 1 or inputs[0].kind not in ("tabular", "tensor"):
            raise SpecError(
                "model.factory",
                [
                    f"model.factory: {factory} takes in_features, so it fits one tabular or "
                    f"tensor input (this model has {[i.kind for i in inputs]}); give the "
                    "factory an `inputs` parameter instead"
                ],
            )
        sizes: dict[str, Any] = {"in_features": math.prod(inputs[0].shape)}
    else:
        sizes = {"inputs": inputs_info(inputs)}
    module = make(out_features=out_features, **sizes, **kwargs)
    if not isinstance(module, nn.Module):
        raise SpecError(
            "model.factory",
            [f"model.factory: {factory} must return a torch.nn.Module (got {type(module)!r})"],
        )
    if "in_features" in sizes:
        # A hook, not a wrapper module: the state dict keeps the factory's own key names.
        module.register_forward_pre_hook(_flatten_inputs)
    return module


def _flatten_inputs(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return tuple(a.flatten(1) for a in args)
