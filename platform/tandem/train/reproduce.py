"""Reproduce a registered version: the spec to train it again, and how two versions compare.

``reproduction_spec`` gives back the resolved spec a version's lineage kept, after making
sure what it trained on is still there unchanged (the data by content fingerprint, a
shipped user package by sha256). ``compare_versions`` says whether two versions' weights
and metrics are identical. No Ray here: ``Client.reproduce`` runs the training.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch

from tandem.data import open_source
from tandem.errors import RegistryError, SpecError
from tandem.models import pack, user_package
from tandem.registry import DatasetRef, Manifest, Registry
from tandem.specs import TrainJobSpec, load

TIMING_METRICS = frozenset({"samples_per_s", "data_wait_fraction"})
"""Metrics that measure the machine, not the model: left out of comparisons."""


def reproduction_spec(manifest: Manifest) -> TrainJobSpec:
    """The spec ``manifest``'s version was trained from, to train it again.

    Refused (``RegistryError``) when the lineage kept no spec, and (``SpecError``, one line
    per problem) when a dataset's content or the user package changed since.
    """
    label = f"{manifest.name} v{manifest.version}"
    recorded = manifest.lineage.spec
    if recorded is None:
        raise RegistryError(
            f"{label} records no training spec (it was registered from outside a Tandem "
            "training run, or by a Tandem that did not keep specs), so it cannot be "
            "reproduced; train it again from its spec file with `tandem train`"
        )
    spec = load(TrainJobSpec, recorded)
    problems = [
        *(p for ref in manifest.lineage.datasets for p in _data_changes(ref, spec, label)),
        *_code_changes(manifest, label),
    ]
    if problems:
        raise SpecError(f"reproducing {label}", problems)
    return spec


def _data_changes(ref: DatasetRef, spec: TrainJobSpec, label: str) -> list[str]:
    field = "dataset.validation" if ref.uri == spec.dataset.validation else "dataset.train"
    try:
        now = open_source(ref.uri, field).fingerprint()
    except SpecError as error:
        return [f"{problem} (it held {label}'s training data)" for problem in error.problems]
    if now.digest == ref.fingerprint:
        return []
    then = "" if ref.files is None else f" ({ref.files} files, {ref.bytes} bytes then"
    then += "" if ref.files is None else f"; {now.files} files, {now.bytes} bytes now)"
    return [
        f"{field}: the data at {ref.uri} changed since {label} was trained{then}; "
        "put back the data it was trained on to reproduce it"
    ]


def _code_changes(manifest: Manifest, label: str) -> list[str]:
    if manifest.code is None:
        return []
    shipped = manifest.code.package
    found = user_package(manifest.factory)
    if found is None or found[0] != shipped:
        return [
            f"model.factory: {label} was trained with the user package {shipped!r}, which "
            "is not importable here as source; put it on the Python path (the version's "
            f"{manifest.code.file} holds the source it was trained with)"
        ]
    digest = hashlib.sha256(pack(found[1])).hexdigest()
    if digest == manifest.code.sha256:
        return []
    return [
        f"model.factory: the package {shipped!r} at {found[1]} changed since {label} was "
        f"trained (sha256 {manifest.code.sha256[:12]}… then, {digest[:12]}… now); restore "
        f"the source it was trained with (the version's {manifest.code.file} holds it)"
    ]


@dataclass(frozen=True)
class VersionComparison:
    """Two versions of one model, weight by weight and metric by metric."""

    name: str
    a: int
    b: int
    weights_identical: bool
    """Same tensor names, shapes, dtypes and values."""
    max_abs_diff: float
    """Largest absolute difference between matching values (``inf`` when the tensors
    cannot be matched up: see ``mismatch``)."""
    max_diff_tensor: str | None
    """The tensor holding it (``None`` when identical)."""
    mismatch: str | None
    """Why the weights cannot be compared value by value (names, shapes or dtypes)."""
    metrics: dict[str, tuple[float | None, float | None]]
    """Each model metric (``TIMING_METRICS`` left out) → (value in a, value in b)."""

    @property
    def differing_metrics(self) -> dict[str, tuple[float | None, float | None]]:
        return {k: pair for k, pair in self.metrics.items() if pair[0] != pair[1]}

    @property
    def metrics_identical(self) -> bool:
        return not self.differing_metrics


@dataclass(frozen=True)
class Reproduction:
    """A version trained again from its lineage (``Client.reproduce``)."""

    original: Manifest
    manifest: Manifest
    """The new version, registered under the same model name."""
    comparison: VersionComparison
    """The original (``a``) against the new version (``b``)."""


def compare_versions(
    registry: Registry, name: str, a: int | str, b: int | str
) -> VersionComparison:
    """Compare versions ``a`` and ``b`` of ``name`` (numbers or aliases); weights are
    sha256-checked as they load."""
    manifest_a, weights_a = registry.load_weights(name, a)
    manifest_b, weights_b = registry.load_weights(name, b)
    mismatch = _mismatch(weights_a, weights_b, manifest_a.version, manifest_b.version)
    largest, where = (math.inf, mismatch[0]) if mismatch else (0.0, None)
    if mismatch is None:
        for key in sorted(weights_a):
            if torch.equal(weights_a[key], weights_b[key]):
                continue
            diff = (weights_a[key].double() - weights_b[key].double()).abs().max().item()
            if where is None or diff > largest:
                largest, where = diff, key
    keys = sorted((manifest_a.metrics.keys() | manifest_b.metrics.keys()) - TIMING_METRICS)
    return VersionComparison(
        name=name,
        a=manifest_a.version,
        b=manifest_b.version,
        weights_identical=mismatch is None and where is None,
        max_abs_diff=largest,
        max_diff_tensor=where,
        mismatch=None if mismatch is None else mismatch[1],
        metrics={k: (manifest_a.metrics.get(k), manifest_b.metrics.get(k)) for k in keys},
    )


def _mismatch(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], version_a: int, version_b: int
) -> tuple[str, str] | None:
    """(tensor, why) for the first tensor that cannot be compared value by value."""
    for key in sorted(a.keys() | b.keys()):
        if key not in b or key not in a:
            missing = version_b if key not in b else version_a
            return key, f"{key} is missing from v{missing}"
        if a[key].shape != b[key].shape or a[key].dtype != b[key].dtype:
            return key, (
                f"{key} is {a[key].dtype} {list(a[key].shape)} in v{version_a} and "
                f"{b[key].dtype} {list(b[key].shape)} in v{version_b}"
            )
    return None
