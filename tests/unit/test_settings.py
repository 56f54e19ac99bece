"""Which cluster, which storage, which ports: settings read from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tandem.cluster.storage import is_local_path, shared_storage_problem
from tandem.settings import Settings

EMBEDDED = {"gcs_address": "127.0.0.1:21000", "dashboard_url": "http://127.0.0.1:21001"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "TANDEM_STORAGE", "TANDEM_PORT_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("address", EMBEDDED.values())
def test_an_address_of_the_embedded_cluster_is_still_the_embedded_cluster(
    home: Path, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    """After ``eval "$(tandem env)"`` every command behaves as without it."""
    (home / "cluster.json").write_text(json.dumps(EMBEDDED))
    monkeypatch.setenv("RAY_ADDRESS", address)
    settings = Settings.from_env()
    assert settings.embedded and settings.attached
    assert settings.cluster_host == "127.0.0.1"
    assert settings.storage_uri == str(home / "storage")


def test_without_a_running_embedded_cluster_the_same_address_is_remote(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", EMBEDDED["gcs_address"])
    assert not Settings.from_env().embedded


@pytest.mark.parametrize(
    ("address", "gcs", "api"),
    [
        ("10.0.0.5:6379", "10.0.0.5:6379", "http://10.0.0.5:8265"),
        ("ray://10.0.0.5:6379", "10.0.0.5:6379", "http://10.0.0.5:8265"),
        ("http://10.0.0.5:8265", "10.0.0.5:6379", "http://10.0.0.5:8265"),
        ("https://head.example.com", "head.example.com:6379", "https://head.example.com"),
    ],
)
def test_a_remote_cluster_is_named_by_either_address(
    home: Path, monkeypatch: pytest.MonkeyPatch, address: str, gcs: str, api: str
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", address)
    settings = Settings.from_env()
    assert not settings.embedded
    assert (settings.remote_gcs_address, settings.remote_api_address) == (gcs, api)


def test_one_serve_port_rule_and_one_storage_setting(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.setenv("TANDEM_PORT_BASE", "30000")
    monkeypatch.setenv("TANDEM_STORAGE", "s3://bucket/tandem")
    settings = Settings.from_env()
    assert settings.serve_http_port == 30003 and settings.cluster_host == "10.0.0.5"
    assert settings.storage_uri == "s3://bucket/tandem"
    assert settings.storage_for(None) == "s3://bucket/tandem"
    assert settings.storage_for("gs://other") == "gs://other"  # a spec's storage wins
    monkeypatch.setenv("TANDEM_STORAGE", "shared")
    assert Settings.from_env().storage_uri == str(home / "shared")


def test_a_local_storage_path_is_refused_only_when_nodes_span_machines() -> None:
    assert is_local_path("/data/tandem") and is_local_path("file:///data/tandem")
    assert not is_local_path("s3://bucket/tandem")
    assert shared_storage_problem("/data/tandem", {"10.0.0.5"}) is None
    assert shared_storage_problem("s3://bucket", {"10.0.0.5", "10.0.0.6"}) is None
    problem = shared_storage_problem("/data/tandem", {"10.0.0.5", "10.0.0.6"})
    assert problem is not None and "TANDEM_STORAGE" in problem and "2 machines" in problem
