"""Typed specs for everything a user writes down: jobs, data, models, deployments, pools."""

from tandem.specs.base import Spec, load
from tandem.specs.cluster import ClusterSpec, Pool, PoolSpec, pool_resource
from tandem.specs.dataset import DatasetSpec
from tandem.specs.deployment import (
    AuthSpec,
    AutoscalingSpec,
    BatchingSpec,
    CanarySpec,
    DeploymentSpec,
    Precision,
)
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
    "DeploymentSpec",
    "FailureSpec",
    "ModelSpec",
    "Pool",
    "PoolSpec",
    "Precision",
    "ScalingSpec",
    "Spec",
    "TrainJobSpec",
    "TrainParams",
    "load",
    "pool_resource",
]
