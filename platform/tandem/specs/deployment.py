"""How one registry model is served: batching, scaling, admission control, rollout."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tandem.specs.base import Spec
from tandem.specs.train import NAME_PATTERN

VersionRef = int | str
"""A version number (``3``) or an alias (``production``)."""
Precision = Literal["fp32", "fp16", "bf16"]
"""Floating-point type of the weights and activations at inference: ``fp32`` (as trained),
or half precision on a GPU (``fp16``, ``bf16``: about half the memory and faster matrix
work; outputs differ from fp32 in the third or fourth significant digit)."""


def half_precision_needs_gpu(precision: Precision, gpus: float, gpu_field: str) -> Precision:
    """Refuse fp16/bf16 without a GPU: on most CPUs half precision is emulated (slower
    than fp32) and only loses accuracy, which is not what anyone asking for it wants."""
    if precision != "fp32" and gpus == 0:
        raise ValueError(
            f"{precision} runs only on a GPU: set {gpu_field} > 0, or precision: fp32 "
            "for CPU inference (half precision on a CPU is slower and less accurate)"
        )
    return precision


MODEL_APP_IMPORT_PATH = "tandem.serve.app:build"
"""Serve's ``import_path`` of a Tandem model app (in ``tandem deploy``'s config and in
Serve config files under ``deployments/``)."""


class BatchingSpec(Spec):
    """How a replica groups requests into forward passes: fixed sizes by default, or sizes
    chosen online to hold a latency target (``target_p99_ms``)."""

    max_batch_size: int = Field(32, ge=1, le=4096)
    """Largest batch the model sees; the queue flushes when it is full. With
    ``target_p99_ms``: the largest batch the controller may choose."""
    max_wait_ms: float = Field(2.0, ge=0, le=10_000)
    """How long the first request of a batch may wait for company. With ``target_p99_ms``:
    the longest wait the controller may choose."""
    target_p99_ms: float | None = Field(None, ge=1, le=10_000)
    """p99 latency (end to end, as the client sees it) to hold; when set, each replica tunes
    its batch size and wait online for the most throughput under it (additive increase,
    multiplicative decrease on its recent batches), holding its own part, queue wait plus
    forward pass, under 60% of it. Unset: the fixed ``max_batch_size`` and
    ``max_wait_ms``."""


class AutoscalingSpec(Spec):
    min_replicas: int = Field(1, ge=0, le=1024)
    """Replicas kept even when idle."""
    max_replicas: int = Field(4, ge=1, le=1024)
    """Upper bound on replicas under load."""
    target_ongoing_requests: float = Field(16, gt=0)
    """Ongoing requests per replica the autoscaler aims for."""
    upscale_delay_s: float = Field(5.0, ge=0)
    """Load must stay high this long before a replica is added."""
    downscale_delay_s: float = Field(30.0, ge=0)
    """Load must stay low this long before a replica is removed."""

    @field_validator("max_replicas")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_replicas")
        if low is not None and value < low:
            raise ValueError(f"must be ≥ autoscaling.min_replicas ({low})")
        return value


class CanarySpec(Spec):
    version: VersionRef
    """The version (or alias) that receives the canary share."""
    weight: int = Field(ge=0, le=100)
    """Percent of requests that do not name a version sent to the canary."""


class ShadowSpec(Spec):
    version: VersionRef
    """The version (or alias) that sees mirrored traffic; its answers are compared with the
    default version's and never returned."""
    share: int = Field(ge=0, le=100)
    """Percent of the requests the default version answers that are mirrored to the shadow
    (in the background, after the answer is computed)."""


class AuthSpec(Spec):
    token_env: str | None = Field(None, min_length=1)
    """Environment variable of the replicas that holds the bearer token."""
    token_file: str | None = Field(None, min_length=1)
    """File holding the bearer token (on every serve node)."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> AuthSpec:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("set exactly one of auth.token_env or auth.token_file")
        return self


class DeploymentSpec(Spec):
    model: str = Field(pattern=NAME_PATTERN)
    """Registry model name; served at ``/v2/models/<model>``."""
    version: VersionRef = "production"
    """Version number or alias served to requests that do not name a version."""
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    max_ongoing_requests: int = Field(64, ge=1, le=100_000)
    """Requests one replica works on at once (Ray Serve's admission limit)."""
    max_queued_requests: int = Field(256, ge=1, le=1_000_000)
    """Requests waiting for a replica before new ones get 503 + Retry-After."""
    cpus_per_replica: float = Field(0.5, gt=0, le=256)
    """Logical CPUs each replica reserves in the serve pool."""
    gpus_per_replica: float = Field(0.0, ge=0, le=16)
    """GPUs each replica reserves in the serve pool; when > 0 the replica loads the model on
    its GPU (CUDA) and every batch runs there. A fraction (0.5) lets replicas share one GPU."""
    precision: Precision = "fp32"
    """Inference precision: ``fp32``, or ``fp16``/``bf16`` (GPU only, needs
    ``gpus_per_replica`` > 0). Probabilities are returned as fp32 either way."""
    max_request_rows: int = Field(4096, ge=1, le=1_000_000)
    """Largest batch (rows) one request may carry; larger ones get 400."""
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, le=1024**3)
    """Largest request body; larger ones get 413."""
    canary: CanarySpec | None = None
    """Optional share of unpinned traffic for another version."""
    shadow: ShadowSpec | None = None
    """Optional version that silently re-runs a share of the default version's requests, to
    compare its answers and latency before it takes any traffic."""
    auth: AuthSpec | None = None
    """Optional bearer-token auth on every endpoint but ``/v2/health/live``."""
    storage: str | None = None
    """fsspec URI of the registry's storage; default: the Tandem home's storage."""
    also_serve: list[VersionRef] = Field(default_factory=list)
    """Further versions (or aliases) kept loaded for ``/versions/{v}`` requests."""

    @field_validator("precision")
    @classmethod
    def _half_precision_on_gpu(cls, value: Precision, info: ValidationInfo) -> Precision:
        gpus = info.data.get("gpus_per_replica")
        return value if gpus is None else half_precision_needs_gpu(value, gpus, "gpus_per_replica")

    @field_validator("max_ongoing_requests")
    @classmethod
    def _batches_can_fill(cls, value: int, info: ValidationInfo) -> int:
        batching = info.data.get("batching")
        if batching is not None and batching.max_batch_size > value:
            raise ValueError(
                f"must be ≥ batching.max_batch_size ({batching.max_batch_size}): Ray Serve "
                "never forms a batch larger than max_ongoing_requests, so batches could "
                "never fill; raise max_ongoing_requests or lower batching.max_batch_size"
            )
        return value
