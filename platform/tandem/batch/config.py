"""What one batch-inference job scores, where it writes, and how wide it runs."""

from __future__ import annotations

from pydantic import Field

from tandem.errors import SpecError
from tandem.specs.base import Spec
from tandem.specs.deployment import VersionRef
from tandem.specs.train import NAME_PATTERN

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
    """Rows each actor scores per call: large batches amortise per-call overhead."""
    max_actors: int = Field(2, ge=1, le=1024)
    """Upper bound of the scoring actor pool (Ray Data grows it from one under load)."""
    cpus_per_actor: float = Field(1.0, gt=0, le=256)
    """Logical CPUs each scoring actor reserves in the batch pool."""
    storage: str | None = None
    """fsspec URI of the registry's storage; default: the Tandem home's storage."""


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
