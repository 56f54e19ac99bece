"""Reproducible versions: content fingerprints, the kept spec, and comparing two versions."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from factories import make_manifest, make_weights
from tandem.cli.run_commands import show_reproduction
from tandem.data import open_source
from tandem.data.ingest import dataset_ref
from tandem.data.source import ParquetSource
from tandem.errors import RegistryError, SpecError
from tandem.models import pack
from tandem.registry import CodeRef, Lineage, Manifest, Registry
from tandem.specs import TrainJobSpec
from tandem.train.provenance import package_versions, source_tree
from tandem.train.reproduce import Reproduction, compare_versions, reproduction_spec


def write_data(path: Path, values: list[float]) -> str:
    pq.write_table(pa.table({"a": values, "b": values, "y": [0] * len(values)}), path)
    return str(path)


def test_fingerprint_follows_the_bytes_not_the_mtime(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    write_data(folder / "part-0.parquet", [1.0, 2.0])
    write_data(folder / "part-1.parquet", [3.0])
    before = open_source(str(folder), "dataset.train").fingerprint()
    assert before.kind == "sha256" and before.files == 2
    assert before.bytes == sum(p.stat().st_size for p in folder.iterdir())

    os.utime(folder / "part-0.parquet", (1, 1))  # touched, same bytes
    assert open_source(str(folder), "dataset.train").fingerprint() == before

    data = bytearray((folder / "part-1.parquet").read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one byte
    (folder / "part-1.parquet").write_bytes(bytes(data))
    assert open_source(str(folder), "dataset.train").fingerprint().digest != before.digest


def test_a_moved_folder_keeps_its_fingerprint(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        write_data(tmp_path / name / "part-0.parquet", [1.0, 2.0])
    first, second = (open_source(str(tmp_path / n), "d").fingerprint() for n in ("one", "two"))
    assert first == second


class ChecksummingFS(MemoryFileSystem):
    """A memory filesystem that reports an ETag, as object stores do, and refuses reads."""

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        found = dict(super().info(path, **kwargs))
        data = self.store[self._strip_protocol(path)].getvalue()
        return found | {"ETag": f'"{hashlib.md5(data).hexdigest()}"'}

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        assert "r" not in mode, "a store checksum needs no read"
        return super().open(path, mode, **kwargs)


def test_store_checksums_are_used_without_reading_the_data() -> None:
    fs = ChecksummingFS()
    fs.pipe_file("/etag-test/part-0.parquet", b"PAR1 pretend")
    found = ParquetSource("memory://etag-test", fs, ("/etag-test/part-0.parquet",)).fingerprint()
    assert found.kind == "store-checksum" and found.files == 1 and found.bytes == 12
    fs.pipe_file("/etag-test/part-0.parquet", b"PAR1 changed")
    again = ParquetSource("memory://etag-test", fs, ("/etag-test/part-0.parquet",)).fingerprint()
    assert again.digest != found.digest


def test_manifests_from_before_reproducibility_still_load() -> None:
    stored = make_manifest().model_dump(mode="json")
    for key in ("spec", "seed", "git_commit", "git_dirty", "packages"):
        del stored["lineage"][key]
    stored["lineage"]["datasets"] = [{"uri": "/data/train.parquet", "fingerprint": "ab" * 32}]
    manifest = Manifest.model_validate(stored)
    assert manifest.lineage.spec is None and manifest.lineage.packages == {}
    assert manifest.lineage.datasets[0].fingerprint_kind == "stat"


def test_lineage_records_the_software() -> None:
    versions = package_versions()
    assert {"tandem", "ray", "torch", "numpy", "pyarrow", "pandas", "safetensors", "python"} == set(
        versions
    )
    tree = source_tree()
    if tree.commit is None:  # an installed copy, not a checkout
        assert tree.dirty is None and "+g" not in tree.code_version
    else:
        assert len(tree.commit) == 40 and tree.code_version.endswith(f"+g{tree.commit[:7]}")


def trained(tmp_path: Path, **lineage: Any) -> tuple[Manifest, str]:
    """A manifest as training registers it, over a Parquet file in ``tmp_path``."""
    train = write_data(tmp_path / "train.parquet", [1.0, 2.0, 3.0])
    spec = TrainJobSpec.model_validate(
        {
            "name": "iris-mlp",
            "dataset": {"train": train, "features": ["a", "b"], "label": "y"},
            "model": {"factory": "tandem.models:mlp", "kwargs": {"hidden": [8]}},
            "train": {"seed": 11},
        }
    )
    base = make_manifest()
    recorded = Lineage.model_validate(
        {
            **base.lineage.model_dump(),
            "spec": spec.model_dump(mode="json"),
            "seed": 11,
            "datasets": [dataset_ref(open_source(train, "dataset.train")).model_dump()],
            **lineage,
        }
    )
    return base.model_copy(update={"version": 3, "lineage": recorded}), train


def test_the_reproduction_spec_is_the_recorded_one(tmp_path: Path) -> None:
    manifest, train = trained(tmp_path)
    spec = reproduction_spec(manifest)
    assert spec.model_dump(mode="json") == manifest.lineage.spec
    assert spec.train.seed == 11 and spec.dataset.train == train


def test_a_version_without_a_spec_cannot_be_reproduced(tmp_path: Path) -> None:
    manifest, _ = trained(tmp_path, spec=None)
    with pytest.raises(RegistryError, match=r"iris-mlp v3 records no training spec.*tandem train"):
        reproduction_spec(manifest)


def test_changed_or_missing_data_is_refused_naming_the_uri(tmp_path: Path) -> None:
    manifest, train = trained(tmp_path)
    write_data(Path(train), [1.0, 2.0, 4.0])
    with pytest.raises(SpecError) as info:
        reproduction_spec(manifest)
    [problem] = info.value.problems
    assert problem.startswith(f"dataset.train: the data at {train} changed since iris-mlp v3")
    Path(train).unlink()
    with pytest.raises(SpecError, match="nothing exists at"):
        reproduction_spec(manifest)


PACKAGE = "acme_reproduce_for_tandem_test"


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "src" / PACKAGE
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "nets.py").write_text(textwrap.dedent("def tiny(inputs, out_features): ...\n"))
    sys.path.insert(0, str(tmp_path / "src"))
    yield root
    sys.path.remove(str(tmp_path / "src"))


def test_changed_user_code_is_refused(tmp_path: Path, package: Path) -> None:
    manifest, _ = trained(tmp_path)
    code = CodeRef(package=PACKAGE, sha256=hashlib.sha256(pack(package)).hexdigest(), bytes=1)
    manifest = manifest.model_copy(update={"factory": f"{PACKAGE}.nets:tiny", "code": code})
    reproduction_spec(manifest)  # the same source: fine
    (package / "nets.py").write_text("def tiny(inputs, out_features): return None\n")
    with pytest.raises(SpecError, match=f"model.factory: the package '{PACKAGE}' at .* changed"):
        reproduction_spec(manifest)


def register(registry: Registry, weights: dict[str, Any], **metrics: float) -> int:
    manifest = make_manifest().model_copy(
        update={"metrics": {"val_accuracy": 0.9, "samples_per_s": 1000.0, **metrics}}
    )
    return registry.register(manifest, weights).version


def test_identical_versions_compare_identical(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    a = register(registry, make_weights(1))
    b = register(registry, make_weights(1), samples_per_s=2000.0)  # timing: not compared
    compared = compare_versions(registry, "iris-mlp", a, b)
    assert compared.weights_identical and compared.max_abs_diff == 0.0
    assert compared.max_diff_tensor is None and compared.mismatch is None
    assert compared.metrics_identical and compared.metrics == {"val_accuracy": (0.9, 0.9)}


def test_different_versions_name_the_largest_difference(tmp_path: Path) -> None:
    registry = Registry(str(tmp_path))
    weights = make_weights(1)
    nudged = {k: v.clone() for k, v in weights.items()}
    nudged["layers.0.bias"][3] += 1e-3
    nudged["layers.2.weight"][0, 0] += 0.5
    a = register(registry, weights)
    register(registry, nudged, val_accuracy=0.8)
    compared = compare_versions(registry, "iris-mlp", a, "latest")
    assert not compared.weights_identical and compared.mismatch is None
    assert compared.max_diff_tensor == "layers.2.weight"
    assert compared.max_abs_diff == pytest.approx(0.5, rel=1e-5)
    assert compared.differing_metrics == {"val_accuracy": (0.9, 0.8)}

    c = register(registry, {**weights, "layers.0.bias": weights["layers.0.bias"][:4]})
    shaped = compare_versions(registry, "iris-mlp", a, c)
    assert not shaped.weights_identical and shaped.max_diff_tensor == "layers.0.bias"
    assert shaped.mismatch == "layers.0.bias is torch.float32 [8] in v1 and torch.float32 [4] in v3"


def test_the_reproduce_command_reports_weights_and_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = Registry(str(tmp_path))
    weights = make_weights(1)
    a = register(registry, weights)
    b = register(registry, weights)
    # 2**-20: exact in float32 for these magnitudes, so the difference prints exactly.
    nudged = {k: v + 2**-20 if k == "layers.0.weight" else v for k, v in weights.items()}
    c = register(registry, nudged, val_accuracy=0.91)
    original = registry.manifest("iris-mlp", a)
    for version, expected in [
        (b, "reproduced iris-mlp v1 as v2\nweights: identical\nmetrics: identical\n"),
        (
            c,
            "reproduced iris-mlp v1 as v3\nweights: differ, largest difference 9.5e-07 in "
            "layers.0.weight\nmetrics: differ\n  val_accuracy: 0.9 (v1) → 0.91 (v3)\n",
        ),
    ]:
        comparison = compare_versions(registry, "iris-mlp", a, version)
        new = registry.manifest("iris-mlp", version)
        show_reproduction(Reproduction(original, new, comparison))
        assert capsys.readouterr().out == expected


def test_training_records_a_spec_that_reproduces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``build_manifest`` keeps the resolved spec, seed and software; the spec it keeps is
    the one ``reproduction_spec`` gives back."""
    from tandem.data.ingest import PreparedData
    from tandem.settings import Settings
    from tandem.train import checkpoint
    from tandem.train.job import build_manifest, with_resolved_paths
    from tandem.train.trainer import FitResult

    monkeypatch.setenv("TANDEM_HOME", str(tmp_path))
    write_data(tmp_path / "train.parquet", [1.0, 2.0, 3.0])
    spec = TrainJobSpec.model_validate(
        {
            "name": "iris-mlp",
            "dataset": {"train": "train.parquet", "features": ["a", "b"], "label": "y"},
            "model": {"factory": "tandem.models:mlp"},
            "train": {"seed": 5},
        }
    )
    resolved = with_resolved_paths(spec, Settings.from_env())
    base = make_manifest()
    data = PreparedData(
        train=None,  # type: ignore[arg-type]
        validation=None,  # type: ignore[arg-type]
        inputs=base.inputs,
        target=base.target,
        refs=[dataset_ref(open_source(resolved.dataset.train, "dataset.train"))],
        train_rows=3,
    )
    best = checkpoint.TrainState(0, make_weights(1), {}, {"epoch": 0.0, "val_accuracy": 0.5})
    manifest = build_manifest(resolved, data, FitResult(best, "/ckpt", []), "iris-mlp-1", None)
    lineage = manifest.lineage
    assert lineage.spec is not None and lineage.seed == 5 and "torch" in lineage.packages
    assert lineage.spec["dataset"]["train"] == str(tmp_path / "train.parquet")
    assert (
        lineage.spec_sha256
        == hashlib.sha256(json.dumps(lineage.spec, sort_keys=True).encode()).hexdigest()
    )
    assert reproduction_spec(manifest.model_copy(update={"version": 1})) == resolved
