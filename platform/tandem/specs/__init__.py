"""Typed specs for everything a user writes down: jobs, data, models, deployments, pools."""

from tandem.specs.base import Spec, load, parse
from tandem.specs.cluster import POOL_LABEL, ClusterSpec, Pool, PoolSpec, pool_resource
from tandem.specs.dataset import (
    DatasetSpec,
    ImageInput,
    SequenceInput,
    TabularInput,
    TensorInput,
    input_columns,
)
from tandem.specs.delivery import CanaryGuard, DeliverySpec, ShadowGuard
from tandem.specs.deployment import (
    MODEL_APP_IMPORT_PATH,
    AuthSpec,
    AutoscalingSpec,
    BatchingSpec,
    CanarySpec,
    DeploymentSpec,
    Precision,
    ShadowSpec,
    VersionRef,
    half_precision_needs_gpu,
)
from tandem.specs.files import deployment_specs, validate_file
from tandem.specs.model import ModelSpec
from tandem.specs.train import (
    NAME_PATTERN,
    CheckpointSpec,
    FailureSpec,
    ScalingSpec,
    TrainJobSpec,
    TrainParams,
)

__all__ = [
    "MODEL_APP_IMPORT_PATH",
    "NAME_PATTERN",
    "POOL_LABEL",
    "AuthSpec",
    "AutoscalingSpec",
    "BatchingSpec",
    "CanaryGuard",
    "CanarySpec",
    "CheckpointSpec",
    "ClusterSpec",
    "DatasetSpec",
    "DeliverySpec",
    "DeploymentSpec",
    "FailureSpec",
    "ImageInput",
    "ModelSpec",
    "Pool",
    "PoolSpec",
    "Precision",
    "ScalingSpec",
    "SequenceInput",
    "ShadowGuard",
    "ShadowSpec",
    "Spec",
    "TabularInput",
    "TensorInput",
    "TrainJobSpec",
    "TrainParams",
    "VersionRef",
    "deployment_specs",
    "half_precision_needs_gpu",
    "input_columns",
    "load",
    "parse",
    "pool_resource",
    "validate_file",
]
