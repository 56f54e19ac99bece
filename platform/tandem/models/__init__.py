"""The model contract (a factory returning ``nn.Module``), the built-in zoo, user code that
travels with a version, and the runner that serving and batch scoring share.

``code`` (user packages as zips) loads eagerly; the factory, the zoo and the runner load
torch, so their names are bound on first use.
"""

from typing import TYPE_CHECKING

from tandem._lazy import lazy_exports
from tandem.models.code import install_code, pack, user_package

if TYPE_CHECKING:
    from tandem.models.factory import build_model, inputs_info, resolve_factory
    from tandem.models.runner import (
        ModelRunner,
        Outputs,
        choose_device,
        device_here,
        load_runner,
        output_names,
        size_torch_threads,
    )
    from tandem.models.zoo import cnn, image_cnn, mlp, sequence_cnn
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "tandem.models.factory": ("build_model", "inputs_info", "resolve_factory"),
            "tandem.models.runner": (
                "ModelRunner",
                "Outputs",
                "choose_device",
                "device_here",
                "load_runner",
                "output_names",
                "size_torch_threads",
            ),
            "tandem.models.zoo": ("cnn", "image_cnn", "mlp", "sequence_cnn"),
        },
    )

__all__ = [
    "ModelRunner",
    "Outputs",
    "build_model",
    "choose_device",
    "cnn",
    "device_here",
    "image_cnn",
    "inputs_info",
    "install_code",
    "load_runner",
    "mlp",
    "output_names",
    "pack",
    "resolve_factory",
    "sequence_cnn",
    "size_torch_threads",
    "user_package",
]
