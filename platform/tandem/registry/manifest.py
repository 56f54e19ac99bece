"""``manifest.json``: everything needed to rebuild, check and serve a model version.

Weights are data, never code: the manifest names the factory by import path and
holds its kwargs, each input's preprocessing fitted at training time and the sha256
of ``model.safetensors`` (and of ``code.zip``, the user's package, when the factory
came from one). Nothing is unpickled from storage.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "model.safetensors"
CODE_FILE = "code.zip"
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


InputKind = Literal["tabular", "tensor", "image", "sequence"]


class InputSchema(Record):
    """One model input as training fitted it: what it reads, its shape and preprocessing.

    ``tandem.preprocess`` applies it identically in training, serving and batch scoring.
    """

    name: str
    """The v2 request's tensor name and the key in the factory's ``inputs``."""
    kind: InputKind
    columns: list[str]
    """Parquet columns it reads (tabular: one per feature or one list column; else one)."""
    shape: list[int]
    """Shape of one row as the model sees it, without the batch axis."""
    dtype: Literal["float32", "int64"]
    """Element type the model receives (int64 for token ids, float32 otherwise)."""
    features: list[str] = Field(default_factory=list)
    """Tabular: one name per feature (a column, or ``column[i]`` of a list column)."""
    normalize: Literal["fitted", "none"] = "none"
    mean: list[float] | None = None
    """With ``normalize: fitted``: per feature (tabular) or per channel (tensor, image)."""
    std: list[float] | None = None
    """Standard deviations matching ``mean`` (1.0 where a value is constant)."""
    vocab_size: int | None = Field(None, ge=1)
    """Sequence: largest token id in the training split + 1; larger ids are refused."""
    example: list[int] | list[float] | str
    """One raw training row: numbers (row-major) or, for images, the encoded image as
    base64. Replicas run it for warm-up and health checks."""

    @property
    def num_features(self) -> int:
        return math.prod(self.shape)


class TargetSchema(Record):
    """What the model predicts."""

    shape: list[int] = Field(default_factory=list)
    """Regression: ``[]`` for one value per row, ``[K]`` for a vector of K values."""
    classes: list[int] | None = None
    """Classification: the label value of each output index (sorted training labels)."""


FingerprintKind = Literal["sha256", "store-checksum", "mixed", "stat"]


class DatasetRef(Record):
    """One dataset URI a version was trained on, and what its data was at the time."""

    uri: str
    fingerprint: str
    """sha256 over each Parquet file's path (relative to ``uri``), size and content identity
    (see ``fingerprint_kind``): the same files with the same bytes give the same
    fingerprint, whatever their modification times."""
    fingerprint_kind: FingerprintKind = "stat"
    """How each file's content was identified: ``sha256`` of its bytes (local disks and
    stores without checksums); ``store-checksum``, the object store's own checksum or ETag
    (no bytes read); ``mixed``, some of each; ``stat``, paths, sizes and modification
    times only (versions registered before content fingerprints)."""
    files: int | None = Field(None, ge=0)
    """Parquet files under ``uri`` (``None`` for ``stat`` fingerprints)."""
    bytes: int | None = Field(None, ge=0)
    """Their total size (``None`` for ``stat`` fingerprints)."""


class Lineage(Record):
    """Where a version came from: the run, its spec, data, code and software.

    Fields added after the first release have defaults, so older manifests still load."""

    run_name: str
    run_id: str
    """The training run's folder name under run storage."""
    submission_id: str | None = None
    """Ray job submission id when the run came through the jobs API."""
    spec_sha256: str
    """sha256 of ``spec`` as sorted-key JSON."""
    datasets: list[DatasetRef]
    code_version: str
    """Tandem's version, plus ``+g<short commit>`` when it ran from a git checkout."""
    ray_version: str
    torch_version: str
    python_version: str
    checkpoint: str
    """URI of the checkpoint the weights came from."""
    spec: dict[str, Any] | None = None
    """The full resolved training spec (``TrainJobSpec`` as JSON: dataset URIs absolute,
    seed included) that ``tandem reproduce`` trains again; ``None`` for versions registered
    from outside a training run or before specs were kept."""
    seed: int | None = None
    """The run's seed (``train.seed``): model initialisation, shuffling, validation split."""
    git_commit: str | None = None
    """Full commit of the source tree Tandem ran from, when that is a git checkout (the
    user's own model package is identified by ``Manifest.code.sha256`` instead)."""
    git_dirty: bool | None = None
    """Whether that tree had uncommitted changes (``None``: not a git checkout)."""
    packages: dict[str, str] = Field(default_factory=dict)
    """Versions the run trained with: tandem, ray, torch, numpy, pyarrow, pandas,
    safetensors and python."""


class WeightsRef(Record):
    file: str = WEIGHTS_FILE
    sha256: str
    bytes: int = Field(ge=0)


class CodeRef(Record):
    package: str
    """Top-level package (or module) name the factory is imported from."""
    file: str = CODE_FILE
    """Zip of the package's source in the version folder."""
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
    inputs: list[InputSchema] = Field(min_length=1)
    """The model's inputs in ``forward`` order."""
    target: TargetSchema
    metrics: dict[str, float]
    """Validation metrics of the registered checkpoint (``val_accuracy`` or ``val_rmse``, ...)."""
    weights: WeightsRef
    code: CodeRef | None = None
    """The user package the factory comes from, stored with the version; ``None`` for
    factories importable everywhere (Tandem's zoo, installed packages)."""
    lineage: Lineage

    @property
    def classes(self) -> list[int] | None:
        return self.target.classes
