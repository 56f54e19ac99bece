"""Validate any spec file by recognising its kind from its top-level keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tandem.errors import SpecError
from tandem.specs.base import describe, load, parse, read_yaml
from tandem.specs.cluster import ClusterSpec
from tandem.specs.delivery import DeliverySpec
from tandem.specs.deployment import MODEL_APP_IMPORT_PATH, DeploymentSpec
from tandem.specs.train import TrainJobSpec


def spec_kind(data: Any) -> str:
    """``cluster``, ``serve-config``, ``train-job``, ``delivery`` or ``deployment``."""
    if not isinstance(data, dict):
        return "unknown"
    if "provider" in data or "available_node_types" in data:
        return "cluster"
    if "applications" in data:
        return "serve-config"
    if "dataset" in data:
        return "train-job"
    if "candidate" in data:
        return "delivery"
    return "deployment"


def serve_config_deployments(data: dict[str, Any], source: str) -> list[DeploymentSpec]:
    """The ``DeploymentSpec`` of each Tandem model app in a Serve config file (the gateway
    and apps of other code are Serve's business, not checked here)."""
    applications = data.get("applications") or []
    if not isinstance(applications, list):
        raise SpecError(
            source,
            [f"applications: expected a list of applications (got {describe(applications)})"],
        )
    specs, problems = [], []
    for index, app in enumerate(applications):
        if not isinstance(app, dict):
            problems.append(f"applications.{index}: expected a mapping (got {describe(app)})")
            continue
        if app.get("import_path") != MODEL_APP_IMPORT_PATH:
            continue
        args = app.get("args")
        try:
            specs.append(parse(DeploymentSpec, args, source))
        except SpecError as error:
            problems += [f"applications.{index}.args.{line}" for line in error.problems]
    if problems:
        raise SpecError(source, problems)
    return specs


def deployment_specs(source: DeploymentSpec | str | Path | dict[str, Any]) -> list[DeploymentSpec]:
    """A deployment spec (object, dict or YAML), or every Tandem app of a Serve config file."""
    if isinstance(source, (str, Path)):
        data = read_yaml(source)
        if spec_kind(data) == "serve-config":
            return serve_config_deployments(data, str(source))
        return [parse(DeploymentSpec, data, str(source))]
    return [load(DeploymentSpec, source)]


def validate_file(path: str | Path) -> str:
    """Validate one spec file; return its kind or raise ``SpecError`` with every problem."""
    data = read_yaml(path)
    kind = spec_kind(data)
    source = str(path)
    if kind == "cluster":
        ClusterSpec.from_launcher_config(data, source)
    elif kind == "serve-config":
        serve_config_deployments(data, source)
    elif kind == "train-job":
        parse(TrainJobSpec, data, source)
    elif kind == "delivery":
        parse(DeliverySpec, data, source)
    else:
        parse(DeploymentSpec, data, source)
    return kind
