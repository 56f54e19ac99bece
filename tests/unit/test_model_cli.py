"""``tandem models`` and ``tandem models show`` against a registry under TANDEM_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factories import make_manifest, make_weights
from tandem.cli import app
from tandem.registry import Manifest, Registry
from tandem.settings import Settings

runner = CliRunner()


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path))
    registry = Registry.default(Settings.from_env())
    registry.register(make_manifest(), make_weights(1))
    registry.register(make_manifest(), make_weights(2))
    registry.set_alias("iris-mlp", "production", 1)
    return registry


def test_models_lists_latest_version_and_aliases(registry: Registry) -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "iris-mlp" in result.stdout
    assert "v2" in result.stdout and "production → v1" in result.stdout

    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"name": "iris-mlp", "latest": 2, "versions": [1, 2], "aliases": {"production": 1}}
    ]


def test_models_on_an_empty_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path))
    assert json.loads(runner.invoke(app, ["models", "--json"]).stdout) == []
    assert "no models" in runner.invoke(app, ["models"]).stdout


def test_show_by_alias_version_and_latest(registry: Registry) -> None:
    result = runner.invoke(app, ["models", "show", "iris-mlp", "production"])
    assert result.exit_code == 0, result.output
    assert "iris-mlp v1  (aliases: production)" in result.stdout
    assert registry.manifest("iris-mlp", 1).weights.sha256 in result.stdout

    latest = runner.invoke(app, ["models", "show", "iris-mlp"])
    assert "iris-mlp v2" in latest.stdout

    as_json = runner.invoke(app, ["models", "show", "iris-mlp", "2", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert Manifest.model_validate_json(as_json.stdout) == registry.manifest("iris-mlp", 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "model 'nope' is not in the registry"),
        (["iris-mlp", "9"], "no version 9"),
        (["iris-mlp", "canary"], "no alias 'canary'"),
    ],
)
def test_show_unknown_is_a_clean_error(registry: Registry, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["models", "show", *args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output
