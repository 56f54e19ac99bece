"""The built-in model zoo and the model contract (a factory returning ``nn.Module``)."""

from tandem.models.factory import build_model, resolve_factory
from tandem.models.zoo import cnn, mlp

__all__ = ["build_model", "cnn", "mlp", "resolve_factory"]
