"""The files Tandem ships in its package are the repository's own, and are what it reads."""

from __future__ import annotations

import dataclasses
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from tandem.cluster import session
from tandem.cluster.session import default_cluster_spec
from tandem.defaults import cluster_file, recipe
from tandem.sdk.quickstart import DEPLOYMENT, TRAIN_SPEC
from tandem.settings import Settings
from tandem.specs import ClusterSpec
from tandem.specs.files import validate_file

REPO = Path(__file__).resolve().parents[2]
PACKAGED = files("tandem.defaults")


def recipes() -> list[str]:
    """Every shipped recipe, by its path in the repository."""
    root = Path(str(PACKAGED / "recipes"))
    return sorted(str(path.relative_to(root)) for path in root.rglob("*.yaml"))


def parsed(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def test_the_packaged_cluster_file_is_the_repositorys() -> None:
    with cluster_file() as path:
        assert parsed(path) == parsed(REPO / "cluster.yaml")


def test_the_quickstart_recipes_are_shipped() -> None:
    assert {TRAIN_SPEC, DEPLOYMENT} <= set(recipes())


@pytest.mark.parametrize("name", recipes())
def test_each_recipe_is_the_repositorys_file_at_its_path(name: str) -> None:
    with recipe(name) as path:
        assert parsed(path) == parsed(REPO / name)
        validate_file(path)


def test_the_default_pools_are_cluster_yamls() -> None:
    spec = default_cluster_spec()
    assert spec == ClusterSpec.from_file(REPO / "cluster.yaml")
    assert {pool: p.cpus for pool, p in spec.pools.items()} == {
        "train": 16,
        "serve": 8,
        "batch": 8,
    }


def test_tandem_cluster_file_wins_over_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parsed(REPO / "cluster.yaml")
    assert isinstance(config, dict)
    config["available_node_types"]["serve"]["resources"]["CPU"] = 24
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(config))
    planned: list[ClusterSpec] = []
    monkeypatch.setattr(session, "plan_embedded", lambda spec, *_, **__: planned.append(spec))
    monkeypatch.setattr(session, "_local_gpus", list)
    settings = Settings.from_env()
    for cluster in (mine, tmp_path / "absent.yaml"):
        session.embedded_layout(dataclasses.replace(settings, cluster_file=cluster))
    assert planned == [ClusterSpec.from_file(mine), default_cluster_spec()]
    assert planned[0].pools["serve"].cpus == 24
