"""What ``Client`` returns: small frozen values, never the platform's internal objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SpecSource = str | Path | dict[str, Any]
"""A spec as a YAML path or a dict of its fields (or the spec object itself, where typed)."""
Predictions = dict[str, np.ndarray]
"""Named model outputs: ``label`` and ``probabilities`` (classification) or ``prediction``."""


@dataclass(frozen=True)
class ModelSummary:
    """One registered model: its versions and where its aliases point."""

    name: str
    latest: int
    versions: list[int]
    aliases: dict[str, int]


@dataclass(frozen=True)
class AliasMove:
    """An alias that moved (by ``promote`` or ``rollback``)."""

    model: str
    alias: str
    version: int
    previous: int | None
    """The version the alias named before; ``None`` when it was new."""


@dataclass(frozen=True)
class Canary:
    """A version that answers a share of the requests that pin no version."""

    version: int
    weight: int
    """Percent of unpinned requests it answers."""


@dataclass(frozen=True)
class Shadow:
    """A version that re-runs a share of the default's requests; its answers are only
    compared, never returned."""

    version: int
    share: int
    """Percent of the default's requests it re-runs."""


@dataclass(frozen=True)
class Deployment:
    """One deployed model: what Serve reports and which versions answer."""

    model: str
    status: str
    """Serve's application status: ``RUNNING``, ``DEPLOYING``, ``UNHEALTHY`` and the like."""
    default: int
    """The version a request without a version gets (unless the canary takes it)."""
    canary: Canary | None
    shadow: Shadow | None
    served: tuple[int, ...]
    """Versions that answer requests (default, canary, pinned), ascending."""
    loaded: tuple[int, ...]
    """Versions a replica holds: the served ones and the shadow, ascending."""
    url: str
    """The model's v2 base URL (``<endpoint>/v2/models/<model>``)."""


@dataclass(frozen=True)
class JobSummary:
    """One job submitted to the cluster (training, batch or any ``ray job submit``)."""

    submission_id: str
    status: str
    """``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``STOPPED``."""
    entrypoint: str
    message: str | None
    """Ray's message about the job's state (why it failed, for one)."""


@dataclass(frozen=True)
class EmbeddedCluster:
    """The embedded cluster ``Client.up`` started (or found running)."""

    gcs_address: str
    dashboard_url: str
    cores: dict[str, list[int]]
    """Each pool's node: the cores it is pinned to."""
    gpus: dict[str, list[str]]
    """Each pool's node: its GPUs (``CUDA_VISIBLE_DEVICES`` ids); absent without GPUs."""
    borrowed_cores: dict[str, list[int]]
    """Cores a node may also run on while their own pool leaves them idle."""


@dataclass(frozen=True)
class WrittenData:
    """A dataset written as Parquet: where, and how many rows in each split."""

    uri: str
    train_rows: int
    validation_rows: int
