"""``manifest.json``: everything needed to rebuild, check and serve a model version.

Weights are data, never code: the manifest names the factory by import path and
holds its kwargs, the preprocessing fitted at training time and the sha256 of
``model.safetensors``. Nothing is unpickled from storage.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "model.safetensors"
MAX_VERSION_DIGITS = 18


def version_number(ref: str) -> int | None:
    """``ref`` as a version number, or ``None`` when it names none (an alias, "latest").

    ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses."""
    if ref.isascii() and ref.isdigit() and len(ref) <= MAX_VERSION_DIGITS:
        return int(ref)
    return None


class Record(BaseModel):
    """Stored records: strict about unknown keys, so a corrupted file is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSchema(Record):
    features: list[str]
    """Feature names in the order the model (and a v2 request's columns) expect."""
    datatype: Literal["FP32"] = "FP32"
    """Tensor type the model computes in; FP64 requests are converted."""
    source_column: str | None = None
    """Set when the Parquet data held features as one fixed-size-list column."""

    @property
    def num_features(self) -> int:
        return len(self.features)


class Preprocessing(Record):
    mean: list[float]
    """Per-feature mean over the training split, in ``InputSchema.features`` order."""
    std: list[float]
    """Per-feature standard deviation (1.0 where a feature is constant)."""


class DatasetRef(Record):
    uri: str
    fingerprint: str
    """sha256 over the Parquet files' paths, sizes and modification times."""


class Lineage(Record):
    run_name: str
    run_id: str
    """The training run's folder name under run storage."""
    submission_id: str | None = None
    """Ray job submission id when the run came through the jobs API."""
    spec_sha256: str
    datasets: list[DatasetRef]
    code_version: str
    ray_version: str
    torch_version: str
    python_version: str
    checkpoint: str
    """URI of the checkpoint the weights came from."""


class WeightsRef(Record):
    file: str = WEIGHTS_FILE
    sha256: str
    bytes: int = Field(ge=0)


class Manifest(Record):
    name: str
    version: int = Field(ge=0)
    """Assigned by the registry on registration (0 before)."""
    created_at: str
    """UTC ISO-8601 time of registration."""
    task: Literal["classification", "regression"]
    factory: str
    kwargs: dict[str, Any]
    out_features: int = Field(ge=1)
    input: InputSchema
    preprocessing: Preprocessing
    classes: list[int] | None = None
    """Classification: the label value of each output index (sorted training labels)."""
    metrics: dict[str, float]
    """Validation metrics of the registered checkpoint (``val_accuracy`` or ``val_rmse``, ...)."""
    example: list[float]
    """One raw training row: replicas run it for warm-up and health checks."""
    weights: WeightsRef
    lineage: Lineage
