"""Versioned model registry on fsspec storage: immutable versions, aliases, integrity."""

from tandem.registry.external import external_manifest, tabular_input
from tandem.registry.lock import LockPolicy
from tandem.registry.manifest import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    CodeRef,
    DatasetRef,
    InputKind,
    InputSchema,
    Lineage,
    Manifest,
    Record,
    TargetSchema,
    WeightsRef,
    version_number,
)
from tandem.registry.store import Registry

__all__ = [
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "CodeRef",
    "DatasetRef",
    "InputKind",
    "InputSchema",
    "Lineage",
    "LockPolicy",
    "Manifest",
    "Record",
    "Registry",
    "TargetSchema",
    "WeightsRef",
    "external_manifest",
    "tabular_input",
    "version_number",
]
