"""The cluster's pools, read from a Ray cluster-launcher file (``cluster.yaml``).

A pool is a node type whose ``resources`` carry ``pool_<name>`` and whose
``labels`` carry ``tandem.io/pool: <name>``. Work asks for its pool by that
resource, so on a real cluster it lands only on that node type.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field

from tandem.errors import SpecError
from tandem.specs.base import Spec, non_string_keys, parse, read_yaml

POOL_LABEL = "tandem.io/pool"
POOL_RESOURCE_PREFIX = "pool_"


class Pool(StrEnum):
    """The cluster's pools. Each value is the name cluster.yaml, the pool resource
    (``pool_<name>``) and the node label use, so a ``Pool`` goes anywhere its string did."""

    TRAIN = "train"
    SERVE = "serve"
    BATCH = "batch"


def pool_resource(pool: Pool) -> str:
    """The custom Ray resource that marks a node of ``pool``."""
    return f"{POOL_RESOURCE_PREFIX}{pool}"


class PoolSpec(Spec):
    node_type: str
    """Node type in cluster.yaml that makes up this pool."""
    cpus: int = Field(ge=0)
    """CPUs of one node of this type, as cluster.yaml declares them."""
    gpus: int = Field(0, ge=0)
    """GPUs of one node of this type."""


class ClusterSpec(Spec):
    cluster_name: str
    head_node_type: str
    pools: dict[Pool, PoolSpec]
    """Pool → its node type; cluster.yaml must declare train, serve and batch."""

    @classmethod
    def from_launcher_config(cls, config: Any, source: str = "cluster.yaml") -> ClusterSpec:
        """Check ``config`` against Ray's launcher schema, then extract the pools."""
        problems = launcher_schema_problems(config)
        if problems:
            raise SpecError(source, problems)
        pools: dict[str, dict[str, Any]] = {}
        for node_type, body in config.get("available_node_types", {}).items():
            resources = body.get("resources", {})
            for key in resources:
                if not key.startswith(POOL_RESOURCE_PREFIX):
                    continue
                pool = key.removeprefix(POOL_RESOURCE_PREFIX)
                if pool not in tuple(Pool):
                    problems.append(
                        f"available_node_types.{node_type}.resources: {key} names no pool; "
                        f"Tandem's pools are {', '.join(Pool)} "
                        f"(resources {', '.join(pool_resource(p) for p in Pool)})"
                    )
                    continue
                label = body.get("labels", {}).get(POOL_LABEL)
                if label != pool:
                    problems.append(
                        f"available_node_types.{node_type}.labels: must set "
                        f"{POOL_LABEL}: {pool} to match resource {key} (got {label!r})"
                    )
                pools[pool] = {
                    "node_type": node_type,
                    "cpus": resources.get("CPU", 0),
                    "gpus": resources.get("GPU", 0),
                }
        for pool in Pool:  # each one is required
            if pool not in pools:
                problems.append(
                    f"available_node_types: no node type carries resource "
                    f"{pool_resource(pool)} for pool {pool.value!r}"
                )
        if problems:
            raise SpecError(source, problems)
        return parse(
            cls,
            {
                "cluster_name": config["cluster_name"],
                "head_node_type": config.get("head_node_type", ""),
                "pools": pools,
            },
            source,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ClusterSpec:
        return cls.from_launcher_config(read_yaml(path), str(path))


def launcher_schema_problems(config: Any) -> list[str]:
    """Errors from Ray's own cluster-launcher JSON schema, one line each."""
    import jsonschema  # ships with ray[default]'s dependencies
    import ray.autoscaler

    problems = non_string_keys(config)
    if problems:  # the schema's key patterns would crash on them
        return problems
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.path)):
        path = ".".join(str(p) for p in error.path) or "(top level)"
        problems.append(f"{path}: {error.message}")
    return problems
