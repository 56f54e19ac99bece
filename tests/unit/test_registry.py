"""The registry's behaviour on memory:// and a local folder: versions, integrity, aliases."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
import torch
from fsspec.core import url_to_fs

from factories import make_manifest, make_weights
from tandem.errors import IntegrityError, NotFoundError, RegistryError, SpecError
from tandem.registry import LockPolicy, Registry


@pytest.fixture(params=["memory", "local"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://registry-test-{uuid.uuid4().hex}"
    return str(tmp_path / "storage")


def version_file(root: str, name: str, version: int, file: str) -> str:
    return f"{url_to_fs(root)[1]}/registry/{name}/versions/{version}/{file}"


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_register_and_read_back(root: str) -> None:
    registry = Registry(root)
    first = registry.register(make_manifest(), make_weights(1))
    second = registry.register(make_manifest(), make_weights(2))

    assert (first.version, second.version) == (1, 2)
    assert first.created_at.endswith("+00:00")
    assert len(first.weights.sha256) == 64 and first.weights.bytes > 0
    assert registry.models() == ["iris-mlp"]
    assert registry.versions("iris-mlp") == [1, 2]
    assert registry.manifest("iris-mlp", 1) == first
    assert registry.manifest("iris-mlp", "2") == second
    assert registry.resolve("iris-mlp", "latest") == 2
    manifest, weights = registry.load_weights("iris-mlp", 1)
    assert manifest == first
    assert_same(weights, make_weights(1))


def test_file_uri_is_the_same_registry_as_the_path(tmp_path: Path) -> None:
    Registry(str(tmp_path)).register(make_manifest(), make_weights())
    assert Registry(f"file://{tmp_path}").versions("iris-mlp") == [1]


def test_corrupt_weights_are_refused_before_loading(root: str) -> None:
    registry = Registry(root)
    stored = registry.register(make_manifest(), make_weights())
    fs, _ = url_to_fs(root)
    path = version_file(root, "iris-mlp", 1, "model.safetensors")
    data = bytearray(fs.cat_file(path))
    data[-1] ^= 0xFF
    fs.pipe_file(path, bytes(data))

    with pytest.raises(IntegrityError) as caught:
        registry.load_weights("iris-mlp", 1)
    message = str(caught.value)
    assert "model.safetensors" in message and stored.weights.sha256 in message


def test_unparseable_manifest_is_refused(root: str) -> None:
    registry = Registry(root)
    registry.register(make_manifest(), make_weights())
    fs, _ = url_to_fs(root)
    fs.pipe_file(version_file(root, "iris-mlp", 1, "manifest.json"), b'{"name": "iris-mlp"')

    with pytest.raises(IntegrityError, match="not a valid manifest"):
        registry.manifest("iris-mlp", 1)


def test_manifest_of_another_version_is_refused(root: str) -> None:
    registry = Registry(root)
    registry.register(make_manifest(), make_weights())
    registry.register(make_manifest(), make_weights())
    fs, _ = url_to_fs(root)
    fs.pipe_file(
        version_file(root, "iris-mlp", 2, "manifest.json"),
        fs.cat_file(version_file(root, "iris-mlp", 1, "manifest.json")),
    )

    with pytest.raises(IntegrityError, match="version 1"):
        registry.manifest("iris-mlp", 2)


def test_incomplete_version_is_invisible_and_its_number_not_reused(root: str) -> None:
    registry = Registry(root)
    registry.register(make_manifest(), make_weights())
    fs, _ = url_to_fs(root)
    # What writers that crashed before their manifest landed leave behind.
    for path, data in [
        (version_file(root, "iris-mlp", 2, "model.safetensors"), b"partial"),
        (version_file(root, "iris-mlp", 2, "manifest.json.tmp-1"), b"{"),
        (version_file(root, "ghost", 1, "claim.json"), b"{}"),
    ]:
        fs.makedirs(os.path.dirname(path), exist_ok=True)
        fs.pipe_file(path, data)

    assert registry.versions("iris-mlp") == [1]
    assert registry.models() == ["iris-mlp"]
    assert registry.resolve("iris-mlp", "latest") == 1
    with pytest.raises(NotFoundError, match="no version 2"):
        registry.resolve("iris-mlp", 2)
    assert registry.register(make_manifest(), make_weights()).version == 3


def test_unknown_model_version_and_alias_name_what_exists(root: str) -> None:
    registry = Registry(root)
    with pytest.raises(NotFoundError, match="none yet"):
        registry.resolve("iris-mlp", 1)
    registry.register(make_manifest(), make_weights())
    registry.set_alias("iris-mlp", "production", 1)

    with pytest.raises(NotFoundError, match=r"'nope' .*models: iris-mlp"):
        registry.manifest("nope", 1)
    with pytest.raises(NotFoundError, match=r"no version 7 \(versions: 1\)"):
        registry.load_weights("iris-mlp", 7)
    with pytest.raises(NotFoundError, match="production → 1"):
        registry.resolve("iris-mlp", "canary")
    with pytest.raises(NotFoundError, match="no alias 'canary'"):
        registry.alias_history("iris-mlp", "canary")
    with pytest.raises(NotFoundError):
        registry.set_alias("iris-mlp", "canary", 9)


def test_aliases_set_resolve_history_and_rollback(root: str) -> None:
    registry = Registry(root)
    for seed in range(3):
        registry.register(make_manifest(), make_weights(seed))

    assert registry.set_alias("iris-mlp", "production", 1) is None
    assert registry.set_alias("iris-mlp", "production", 2) == 1
    assert registry.set_alias("iris-mlp", "production", 2) == 2  # already there: no new entry
    assert registry.set_alias("iris-mlp", "production", 3) == 2
    registry.set_alias("iris-mlp", "canary", 3)

    assert registry.aliases("iris-mlp") == {"canary": 3, "production": 3}
    assert registry.resolve("iris-mlp", "production") == 3
    assert registry.alias_history("iris-mlp", "production") == [1, 2, 3]
    assert registry.rollback_alias("iris-mlp", "production") == (3, 2)
    assert registry.rollback_alias("iris-mlp", "production") == (2, 1)
    assert registry.alias_history("iris-mlp", "production") == [1]
    assert registry.manifest("iris-mlp", "production").version == 1
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback_alias("iris-mlp", "production")


@pytest.mark.parametrize("alias", ["Production", "1", "latest", "a b", "", "-x"])
def test_bad_alias_names_are_refused(root: str, alias: str) -> None:
    registry = Registry(root)
    registry.register(make_manifest(), make_weights())
    with pytest.raises(SpecError, match="lowercase letter"):
        registry.set_alias("iris-mlp", alias, 1)


@pytest.mark.parametrize("name", ["Iris", "../escape", "a/b", ""])
def test_bad_model_names_are_refused(root: str, name: str) -> None:
    with pytest.raises(SpecError, match=r"e\.g\. 'iris-mlp'"):
        Registry(root).register(make_manifest(name=name), make_weights())


def test_stale_alias_lock_is_broken(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path), LockPolicy(stale_after_s=1, wait_s=5))
    registry.register(make_manifest(), make_weights())
    lock = tmp_path / "registry" / "iris-mlp" / "aliases.lock"
    lock.write_bytes(b"crashed-holder")
    old = time.time() - 60
    os.utime(lock, (old, old))

    assert registry.set_alias("iris-mlp", "production", 1) is None
    assert not lock.exists()


def test_live_alias_lock_times_out_with_the_fix(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path), LockPolicy(stale_after_s=60, wait_s=0.2))
    registry.register(make_manifest(), make_weights())
    (tmp_path / "registry" / "iris-mlp" / "aliases.lock").write_bytes(b"busy")

    with pytest.raises(RegistryError, match="delete that file"):
        registry.set_alias("iris-mlp", "production", 1)


def test_threads_registering_at_once_get_distinct_versions(root: str) -> None:
    registry = Registry(root)
    start = threading.Barrier(8)
    stored: list[int] = []

    def register(seed: int) -> None:
        start.wait()
        manifest = registry.register(make_manifest(run_id=str(seed)), make_weights(seed))
        stored.append(manifest.version)

    threads = [threading.Thread(target=register, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(stored) == registry.versions("iris-mlp") == list(range(1, 9))
    for version in stored:
        manifest, weights = registry.load_weights("iris-mlp", version)
        assert_same(weights, make_weights(int(manifest.lineage.run_id)))


def test_alias_file_is_json_with_history(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    registry.register(make_manifest(), make_weights())
    registry.set_alias("iris-mlp", "production", 1)
    stored = json.loads((tmp_path / "registry" / "iris-mlp" / "aliases.json").read_text())
    assert stored == {"aliases": {"production": {"history": [1]}}}
