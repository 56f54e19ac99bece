"""Typed specs for everything a user writes down: jobs, data, models, deployments, pools."""

from tandem.specs.base import Spec, load
from tandem.specs.cluster import ClusterSpec, PoolSpec, pool_resource
from tandem.specs.dataset import DatasetSpec
from tandem.specs.delivery import DeliverySpec
from tandem.specs.deployment import (
    AuthSpec,
    AutoscalingSpec,
    BatchingSpec,
    CanarySpec,
    DeploymentSpec,
    Precision,
    VersionRef,
)
from tandem.specs.files import deployment_specs, validate_file
from tandem.specs.model import ModelSpec
from tandem.specs.train import (
    CheckpointSpec,
    FailureSpec,
    ScalingSpec,
    TrainJobSpec,
    TrainParams,
)

__all__ = [
    "AuthSpec",
    "AutoscalingSpec",
    "BatchingSpec",
    "CanarySpec",
    "CheckpointSpec",
    "ClusterSpec",
    "DatasetSpec",
    "DeliverySpec",
    "DeploymentSpec",
    "FailureSpec",
    "ModelSpec",
    "PoolSpec",
    "Precision",
    "ScalingSpec",
    "Spec",
    "TrainJobSpec",
    "TrainParams",
    "VersionRef",
    "deployment_specs",
    "load",
    "pool_resource",
    "validate_file",
]
