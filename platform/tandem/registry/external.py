"""Manifests for models trained outside a Tandem job (a notebook, another trainer), so they
can be registered, served and batch-scored like any other version."""

from __future__ import annotations

import math
import platform
from importlib import metadata
from typing import Any, Literal

from tandem.registry.manifest import InputSchema, Lineage, Manifest, TargetSchema, WeightsRef


def tabular_input(
    features: list[str],
    mean: list[float],
    std: list[float],
    example: list[float],
    name: str = "input",
) -> InputSchema:
    """One tabular input over ``features`` (Parquet columns), standardised with ``mean``/``std``."""
    return InputSchema(
        name=name,
        kind="tabular",
        columns=features,
        shape=[len(features)],
        dtype="float32",
        features=features,
        normalize="fitted",
        mean=mean,
        std=std,
        example=example,
    )


def external_manifest(
    name: str,
    factory: str,
    kwargs: dict[str, Any],
    inputs: list[InputSchema],
    target: TargetSchema,
    task: Literal["classification", "regression"] = "classification",
    metrics: dict[str, float] | None = None,
    run_name: str = "external",
) -> Manifest:
    """A manifest ready for ``Registry.register``: lineage says where it came from."""
    out_features = len(target.classes) if target.classes is not None else math.prod(target.shape)
    return Manifest(
        name=name,
        version=0,
        created_at="",
        task=task,
        factory=factory,
        kwargs=kwargs,
        out_features=out_features,
        inputs=inputs,
        target=target,
        metrics=metrics or {},
        weights=WeightsRef(sha256="", bytes=0),
        lineage=Lineage(
            run_name=run_name,
            run_id=run_name,
            spec_sha256="-",
            datasets=[],
            code_version="-",
            ray_version=_version("ray"),
            torch_version=_version("torch"),
            python_version=platform.python_version(),
            checkpoint="-",
        ),
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"
