"""A factory from the user's own package is stored with the version (sha256-checked) and
imported from there by whoever loads the version later — a fresh process here."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from factories import make_manifest
from tandem.errors import IntegrityError, RegistryError
from tandem.models import build_model, install_code, pack, user_package
from tandem.registry import CodeRef, Registry

PACKAGE = "acme_nets_for_tandem_test"
FACTORY = f"{PACKAGE}.nets:tiny"
SOURCE = """
from torch import nn


def tiny(inputs, out_features, hidden=5):
    (info,) = inputs.values()
    width = info["shape"][0]
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out_features))
"""


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "src" / PACKAGE
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "nets.py").write_text(textwrap.dedent(SOURCE))
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "nets.cpython-311.pyc").write_bytes(b"stale")
    sys.path.insert(0, str(tmp_path / "src"))
    yield root
    sys.path.remove(str(tmp_path / "src"))
    for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
        del sys.modules[name]


def test_only_user_packages_are_shipped(package: Path) -> None:
    assert user_package(FACTORY) == (PACKAGE, package)
    assert user_package("tandem.models:mlp") is None
    assert user_package("torch.nn:Linear") is None  # installed: every node has it
    assert user_package("json:loads") is None  # standard library


def test_pack_is_deterministic_and_skips_bytecode(package: Path) -> None:
    first = pack(package)
    (package / "nets.py").touch()  # a new mtime changes nothing
    assert pack(package) == first
    import zipfile
    from io import BytesIO

    names = zipfile.ZipFile(BytesIO(first)).namelist()
    assert names == [f"{PACKAGE}/__init__.py", f"{PACKAGE}/nets.py"]


def register_with_code(tmp_path: Path, package: Path) -> Registry:
    manifest = make_manifest().model_copy(
        update={
            "factory": FACTORY,
            "kwargs": {},
            "code": CodeRef(package=PACKAGE, sha256="", bytes=0),
        }
    )
    weights = build_model(FACTORY, {}, manifest.inputs, manifest.out_features).state_dict()
    registry = Registry(str(tmp_path / "store"))
    registry.register(manifest, weights, code=pack(package))
    return registry


def test_a_fresh_process_serves_the_version_from_the_stored_code(
    tmp_path: Path, package: Path
) -> None:
    registry = register_with_code(tmp_path, package)
    stored = registry.manifest("iris-mlp", 1)
    assert stored.code is not None and stored.code.sha256 and stored.code.bytes > 0
    (package / "nets.py").write_text("raise ImportError('the source checkout is gone')\n")
    script = textwrap.dedent(
        f"""
        import numpy as np
        from tandem.models import load_runner
        from tandem.registry import Registry
        runner = load_runner(Registry({str(tmp_path / "store")!r}), "iris-mlp", 1)
        import {PACKAGE}
        print({PACKAGE}.__file__)
        print(runner.predict([np.ones((2, 4), np.float32)])["label"].tolist())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    where, labels = done.stdout.splitlines()[-2:]
    assert stored.code.sha256 in where and str(tmp_path / "src") not in where
    assert len(eval(labels)) == 2


def test_corrupt_code_is_refused(tmp_path: Path, package: Path) -> None:
    registry = register_with_code(tmp_path, package)
    code = tmp_path / "store" / "registry" / "iris-mlp" / "versions" / "1" / "code.zip"
    code.write_bytes(code.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError, match=r"code\.zip is corrupt"):
        registry.load_code("iris-mlp", 1)
    with pytest.raises(IntegrityError, match=r"code\.zip is corrupt"):
        registry.load_weights("iris-mlp", 1)


def test_another_copy_of_an_imported_package_is_refused(tmp_path: Path, package: Path) -> None:
    registry = register_with_code(tmp_path, package)
    __import__(f"{PACKAGE}.nets")  # the checkout's copy is already imported in this process
    stored = registry.manifest("iris-mlp", 1)
    assert stored.code is not None
    with pytest.raises(RegistryError, match="already imported from"):
        install_code(stored.code, registry.load_code("iris-mlp", 1))
