"""Tandem: train and serve PyTorch models on one Ray cluster with separate pools."""

from tandem.errors import (
    ClusterError,
    IntegrityError,
    JobFailedError,
    NotFoundError,
    RegistryError,
    RequestError,
    SpecError,
    TandemError,
)
from tandem.sdk import AliasMove, Client, Job, ModelSummary
from tandem.specs import ClusterSpec, DatasetSpec, DeploymentSpec, ModelSpec, TrainJobSpec

__version__ = "0.1.0"

__all__ = [
    "AliasMove",
    "Client",
    "ClusterError",
    "ClusterSpec",
    "DatasetSpec",
    "DeploymentSpec",
    "IntegrityError",
    "Job",
    "JobFailedError",
    "ModelSpec",
    "ModelSummary",
    "NotFoundError",
    "RegistryError",
    "RequestError",
    "SpecError",
    "TandemError",
    "TrainJobSpec",
    "__version__",
]
