"""Tandem: train and serve PyTorch models on one Ray cluster with separate pools.

``import tandem`` stays light: the SDK (which loads Ray and torch) is imported on first
use of one of its names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tandem._lazy import lazy_exports
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
from tandem.version import __version__

if TYPE_CHECKING:
    from tandem.sdk import AliasMove, Client, Job, ModelSummary, RetryPolicy
else:
    # The SDK loads Ray and torch: its names are imported on first use.
    __getattr__ = lazy_exports(
        __name__, {"tandem.sdk": ("AliasMove", "Client", "Job", "ModelSummary", "RetryPolicy")}
    )

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
