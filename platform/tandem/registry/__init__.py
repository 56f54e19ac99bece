"""Versioned model registry on fsspec storage: immutable versions, aliases, integrity."""

from tandem.registry.manifest import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    DatasetRef,
    InputSchema,
    Lineage,
    Manifest,
    Preprocessing,
    WeightsRef,
)

__all__ = [
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "DatasetRef",
    "InputSchema",
    "Lineage",
    "Manifest",
    "Preprocessing",
    "WeightsRef",
]
