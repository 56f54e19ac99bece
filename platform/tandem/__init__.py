"""Tandem: train and serve PyTorch models on one Ray cluster with separate pools.

``import tandem`` stays light: the SDK (which loads Ray and torch) is imported on first
use of one of its names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tandem.errors import (
    ClusterError,
    InputError,
    IntegrityError,
    JobFailedError,
    NotFoundError,
    RegistryError,
    RequestError,
    SpecError,
    TandemError,
)
from tandem.specs import ClusterSpec, DatasetSpec, DeploymentSpec, ModelSpec, TrainJobSpec

if TYPE_CHECKING:
    from tandem.sdk import AliasMove, Client, Job, ModelSummary, RetryPolicy

__version__ = "0.1.0"

_LAZY = {"AliasMove", "Client", "Job", "ModelSummary", "RetryPolicy"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import tandem.sdk

        return getattr(tandem.sdk, name)
    raise AttributeError(f"module 'tandem' has no attribute {name!r}")


__all__ = [
    "AliasMove",
    "Client",
    "ClusterError",
    "ClusterSpec",
    "DatasetSpec",
    "DeploymentSpec",
    "InputError",
    "IntegrityError",
    "Job",
    "JobFailedError",
    "ModelSpec",
    "ModelSummary",
    "NotFoundError",
    "RegistryError",
    "RequestError",
    "RetryPolicy",
    "SpecError",
    "TandemError",
    "TrainJobSpec",
    "__version__",
]
