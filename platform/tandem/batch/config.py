"""What one batch-inference job scores, where it writes, and how wide it runs."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from tandem.errors import SpecError
from tandem.specs import NAME_PATTERN, Precision, Spec, VersionRef, half_precision_needs_gpu

ROW_INDEX_COLUMN = "row"
"""Output column holding each row's position in the input when no id column is named."""


class BatchPredictSpec(Spec):
    model: str = Field(pattern=NAME_PATTERN)
    """Registry model name."""
    version: VersionRef = "latest"
    """Version number or alias; resolved once, so every actor scores with the same version."""
    input: str = Field(min_length=1)
    """fsspec URI of a Parquet file or a folder of them; relative paths are under TANDEM_HOME."""
    output: str = Field(min_length=1)
    """fsspec URI of the folder the scored Parquet file is written to."""
    id_column: str | None = None
    """Input column copied to the output to identify rows; default: a ``row`` index."""
    batch_size: int = Field(4096, ge=1, le=1_000_000)
    """Rows each actor scores per call: large batches amortise per-call overhead (and
    keep a GPU busy; raise it for small models on a GPU)."""
    max_actors: int = Field(2, ge=1, le=1024)
    """Upper bound of the scoring actor pool (Ray Data grows it from one under load)."""
    cpus_per_actor: float = Field(1.0, gt=0, le=256)
    """Logical CPUs each scoring actor reserves in the batch pool."""
    gpus_per_actor: float = Field(0.0, ge=0, le=16)
    """GPUs each scoring actor reserves in the batch pool; when > 0 the actor scores on its
    GPU (CUDA). ``max_actors`` actors then need that many GPUs' worth in the pool."""
    precision: Precision = "fp32"
    """Scoring precision: ``fp32``, or ``fp16``/``bf16`` (GPU only, needs ``gpus_per_actor``
    > 0). Probabilities are written as fp32 either way."""
    storage: str | None = None
    """fsspec URI of the registry's storage; default: the Tandem home's storage."""

    @field_validator("precision")
    @classmethod
    def _half_precision_on_gpu(cls, value: Precision, info: ValidationInfo) -> Precision:
        gpus = info.data.get("gpus_per_actor")
        return value if gpus is None else half_precision_needs_gpu(value, gpus, "gpus_per_actor")


def parse_model_ref(ref: str) -> tuple[str, VersionRef]:
    """``NAME`` or ``NAME:VERSION`` (a number or an alias) as used on the command line."""
    name, _, version = ref.partition(":")
    if not name or (":" in ref and not version):
        raise SpecError(
            "model",
            [f"model: expected NAME or NAME:VERSION, e.g. digits-mlp:production (got {ref!r})"],
        )
    if not version:
        return name, "latest"
    return name, int(version) if version.isdigit() else version
