"""The versioned model registry on any fsspec storage.

Layout under ``<root>/registry/<name>/``::

    versions/<n>/claim.json         who claimed number n (exclusive create)
    versions/<n>/model.safetensors  the weights
    versions/<n>/code.zip           the user's model package, when the factory is user code
    versions/<n>/manifest.json      written last: its arrival makes version n exist
    aliases.json                    alias → history of versions (current last)
    aliases.lock                    held while aliases.json changes
    <kind>/<key>.json               records about versions (evaluations, deliveries), each
                                    written in one step; never inside a version folder

Guarantees, given the backend's exclusive create (see ``fsio``):

- Version numbers are unique: a writer claims ``n`` by creating
  ``versions/<n>/claim.json`` exclusively and tries ``n + 1`` if that exists, so
  concurrent writers (threads, processes, hosts) never share or overwrite a
  version. Numbers increase but may have gaps where a writer crashed.
- A version is all or nothing: its folder is private to the claimant until the
  manifest lands in one step (``fsio.write_atomic``); readers list only folders
  holding a manifest, so a crash leaves nothing visible.
- Versions are immutable: nothing writes into a claimed folder but its claimant,
  once, and nothing deletes one.
- Alias moves are serialised by ``aliases.lock`` and ``aliases.json`` is
  replaced in one step, so concurrent moves never lose an update.
- Weights (and ``code.zip``, a user package shipped with the version) are checked
  against the manifest's sha256 before use, and only safetensors, JSON and the zip of
  source files are ever read: nothing is unpickled.

Per backend: local disks and NFS (``O_EXCL``, ``rename``) give all of the above;
``memory://`` gives them within one process; object stores give them when their
fsspec implementation makes ``"xb"`` a conditional write (s3fs >= 2025.7 on AWS
S3 or another store honouring ``If-None-Match``, gcsfs, adlfs). An older s3fs
silently treats ``"xb"`` as ``"wb"``, which breaks number claims and the lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import socket
import types
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fsspec.core import url_to_fs
from pydantic import ValidationError

import tandem.registry.fsio as fsio
import tandem.registry.lock as lock
from tandem.errors import IntegrityError, NotFoundError, SpecError
from tandem.registry.aliases import ALIASES_FILE, LATEST, AliasBook, check_alias_name
from tandem.registry.manifest import (
    CODE_FILE,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    CodeRef,
    Manifest,
    WeightsRef,
    version_number,
)
from tandem.settings import Settings

if TYPE_CHECKING:  # torch loads only where weights are read or written (see ``_safetensors``)
    import torch

CLAIM_FILE = "claim.json"
RECORD_SUFFIX = ".json"
_MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
# Kinds and keys become path components under the model's folder: neither may climb out
# of it, and no kind may be a folder the registry itself keeps there.
_RECORD_KIND = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_RECORD_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RESERVED_KINDS = frozenset({"versions"})


class Registry:
    def __init__(self, root: str, lock_policy: lock.LockPolicy | None = None) -> None:
        """``root``: any fsspec URI or local path; the registry lives at ``<root>/registry/``."""
        self.uri = root.rstrip("/") + "/registry"
        self._fs, base = url_to_fs(root)
        self._root = posixpath.join(base, "registry")
        self._lock_policy = lock_policy or lock.LockPolicy()

    @classmethod
    def default(cls, settings: Settings) -> Registry:
        return cls(settings.storage_uri)

    # --- writing ------------------------------------------------------------

    def register(
        self, manifest: Manifest, weights: dict[str, torch.Tensor], code: bytes | None = None
    ) -> Manifest:
        """Store ``weights`` (and ``code``, the zip of the package ``manifest.code`` names)
        as a new version of ``manifest.name``; returns the stored manifest (its
        ``version``, ``created_at``, ``weights`` and ``code`` are filled in here)."""
        name = _checked_model_name(manifest.name)
        assert (code is None) == (manifest.code is None), "code and manifest.code go together"
        data = _safetensors().save(weights)
        version = self._claim_next_version(name)
        folder = self._version_dir(name, version)
        self._fs.pipe_file(posixpath.join(folder, WEIGHTS_FILE), data)
        update: dict[str, object] = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "weights": WeightsRef(
                file=WEIGHTS_FILE, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data)
            ),
        }
        if code is not None and manifest.code is not None:
            self._fs.pipe_file(posixpath.join(folder, CODE_FILE), code)
            update["code"] = CodeRef(
                package=manifest.code.package,
                sha256=hashlib.sha256(code).hexdigest(),
                bytes=len(code),
            )
        stored = Manifest.model_validate({**manifest.model_dump(), **update})
        fsio.write_atomic(
            self._fs,
            posixpath.join(folder, MANIFEST_FILE),
            stored.model_dump_json(indent=2).encode(),
        )
        return stored

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version``; returns the version it named before (None if new)."""
        check_alias_name(alias)
        self.resolve(name, version)
        with self._aliases_locked(name):
            book = self._alias_book(name)
            previous = book.current().get(alias)
            self._write_alias_book(name, book.moved(alias, version))
        return previous

    def rollback_alias(self, name: str, alias: str) -> tuple[int, int]:
        """Move ``alias`` back to the version it named before; returns (from, to)."""
        with self._aliases_locked(name):
            book = self._alias_book(name)
            rolled = book.rolled_back(name, alias)
            self._write_alias_book(name, rolled)
        return book.current()[alias], rolled.current()[alias]

    def put_record(self, name: str, kind: str, key: str, data: bytes) -> None:
        """Store ``data`` as ``<name>/<kind>/<key>.json`` in one step (a record with the same
        key is replaced). Records describe a model's versions (evaluations, deliveries)
        without writing into them: version folders stay immutable."""
        path = self._record_path(name, kind, key)
        fsio.write_atomic(self._fs, path, data)

    def records(self, name: str, kind: str) -> list[bytes]:
        """Every record of ``kind`` about ``name``, sorted by key (empty when there is none)."""
        folder = self._record_dir(name, kind)
        # Only complete records: write_atomic's temporary files end in ".tmp-<hex>".
        paths = sorted(p for p in self._ls(folder) if p.endswith(RECORD_SUFFIX))
        found = (fsio.read_bytes(self._fs, path) for path in paths)
        return [data for data in found if data is not None]

    # --- reading ------------------------------------------------------------

    def models(self) -> list[str]:
        """Models with at least one complete version."""
        found = self._fs.glob(posixpath.join(self._root, "*", "versions", "*", MANIFEST_FILE))
        return sorted({posixpath.relpath(path, self._root).split("/")[0] for path in found})

    def versions(self, name: str) -> list[int]:
        """Complete versions of ``name``, ascending (empty for an unknown model)."""
        pattern = posixpath.join(self._model_dir(name), "versions", "*", MANIFEST_FILE)
        numbers = (posixpath.basename(posixpath.dirname(path)) for path in self._fs.glob(pattern))
        return sorted(int(n) for n in numbers if n.isdigit())

    def resolve(self, name: str, ref: int | str) -> int:
        """The version that ``ref`` (a number, a numeric string, an alias or "latest") names."""
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.models()) or "none yet"
            raise NotFoundError(
                f"model {name!r} is not in the registry {self.uri} (models: {known})"
            )
        number = ref if isinstance(ref, int) else version_number(ref)
        if number is not None:
            if number not in versions:
                listed = ", ".join(map(str, versions))
                raise NotFoundError(f"model {name!r} has no version {ref} (versions: {listed})")
            return number
        if ref == LATEST:
            return versions[-1]
        aliases = self.aliases(name)
        if ref not in aliases:
            known = ", ".join(f"{a} → {v}" for a, v in aliases.items()) or "none"
            raise NotFoundError(
                f"model {name!r} has no alias {ref!r} (aliases: {known}); "
                f"or give a version number ({versions[0]}..{versions[-1]}) or {LATEST!r}"
            )
        return aliases[ref]

    def manifest(self, name: str, ref: int | str) -> Manifest:
        version = self.resolve(name, ref)
        path = posixpath.join(self._version_dir(name, version), MANIFEST_FILE)
        try:
            manifest = Manifest.model_validate_json(self._fs.cat_file(path))
        except ValidationError as error:
            raise IntegrityError(
                f"{path} is not a valid manifest ({error.error_count()} problems, first: "
                f"{_first_problem(error)}); version {version} of {name!r} cannot be used, "
                "register the model again"
            ) from None
        if (manifest.name, manifest.version) != (name, version):
            raise IntegrityError(
                f"{path} describes {manifest.name!r} version {manifest.version}, not {name!r} "
                f"version {version}: it was copied or edited by hand; register the model again"
            )
        return manifest

    def load_weights(self, name: str, ref: int | str) -> tuple[Manifest, dict[str, torch.Tensor]]:
        """The manifest and its weights, refused (IntegrityError) unless their sha256 matches."""
        manifest, data = self._checked_weights(name, ref)
        return manifest, _safetensors().load(data)

    def load_code(self, name: str, ref: int | str) -> bytes:
        """The zip of the version's user package, refused (IntegrityError) unless its sha256
        matches the manifest's."""
        manifest = self.manifest(name, ref)
        assert manifest.code is not None, f"{name} v{manifest.version} ships no code"
        path = posixpath.join(self._version_dir(name, manifest.version), manifest.code.file)
        return self._checked_file(path, manifest.code.sha256)

    def verify(self, name: str, ref: int | str) -> Manifest:
        """The manifest, once its weights (and code) are known to match their sha256
        (IntegrityError)."""
        return self._checked_weights(name, ref)[0]

    def _checked_weights(self, name: str, ref: int | str) -> tuple[Manifest, bytes]:
        manifest = self.manifest(name, ref)
        folder = self._version_dir(name, manifest.version)
        data = self._checked_file(
            posixpath.join(folder, manifest.weights.file), manifest.weights.sha256
        )
        if manifest.code is not None:
            self._checked_file(posixpath.join(folder, manifest.code.file), manifest.code.sha256)
        return manifest, data

    def _checked_file(self, path: str, sha256: str) -> bytes:
        data = fsio.read_bytes(self._fs, path)
        if data is None:
            raise IntegrityError(f"{path} is missing although its manifest exists")
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise IntegrityError(
                f"{path} is corrupt: sha256 {actual} does not match the manifest's "
                f"{sha256}; register the model again"
            )
        return data

    def aliases(self, name: str) -> dict[str, int]:
        return self._alias_book(name).current()

    def alias_history(self, name: str, alias: str) -> list[int]:
        """Versions ``alias`` has named, oldest first, current last (rollbacks remove entries)."""
        return self._alias_book(name).history(name, alias)

    # --- internals ----------------------------------------------------------

    def _claim_next_version(self, name: str) -> int:
        versions_dir = posixpath.join(self._model_dir(name), "versions")
        taken = [
            int(n) for n in (posixpath.basename(p) for p in self._ls(versions_dir)) if n.isdigit()
        ]
        version = max(taken, default=0) + 1
        claim = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "at": datetime.now(UTC).isoformat()}
        ).encode()
        while not fsio.create_exclusive(
            self._fs, posixpath.join(self._version_dir(name, version), CLAIM_FILE), claim
        ):
            version += 1
        return version

    def _ls(self, path: str) -> list[str]:
        try:
            return list(self._fs.ls(path, detail=False))
        except FileNotFoundError:
            return []

    def _alias_book(self, name: str) -> AliasBook:
        path = posixpath.join(self._model_dir(name), ALIASES_FILE)
        data = fsio.read_bytes(self._fs, path)
        if data is None:
            return AliasBook()
        try:
            return AliasBook.model_validate_json(data)
        except ValidationError as error:
            raise IntegrityError(
                f"{path} is not a valid alias file (first problem: {_first_problem(error)}); "
                "fix or delete it (versions are unaffected), then set the aliases again"
            ) from None

    def _write_alias_book(self, name: str, book: AliasBook) -> None:
        path = posixpath.join(self._model_dir(name), ALIASES_FILE)
        fsio.write_atomic(self._fs, path, book.model_dump_json(indent=2).encode())

    def _aliases_locked(self, name: str) -> AbstractContextManager[None]:
        path = posixpath.join(self._model_dir(name), "aliases.lock")
        return lock.held(self._fs, path, self._lock_policy)

    def _model_dir(self, name: str) -> str:
        return posixpath.join(self._root, _checked_model_name(name))

    def _version_dir(self, name: str, version: int) -> str:
        return posixpath.join(self._model_dir(name), "versions", str(version))

    def _record_dir(self, name: str, kind: str) -> str:
        if not _RECORD_KIND.fullmatch(kind) or kind in _RESERVED_KINDS:
            raise SpecError(
                f"record kind {kind!r}",
                [
                    "must start with a lowercase letter and hold only lowercase letters, digits, "
                    f"'-' or '_' (at most 63 characters, not {sorted(_RESERVED_KINDS)}), "
                    "e.g. 'evaluations'"
                ],
            )
        return posixpath.join(self._model_dir(name), kind)

    def _record_path(self, name: str, kind: str, key: str) -> str:
        folder = self._record_dir(name, kind)
        if not _RECORD_KEY.fullmatch(key):
            raise SpecError(
                f"record key {key!r}",
                [
                    "must start with a letter or digit and hold only letters, digits, '.', '-' "
                    "or '_' (at most 128 characters), e.g. '20250101T120000Z-3f2a'"
                ],
            )
        return posixpath.join(folder, key + RECORD_SUFFIX)


def _checked_model_name(name: str) -> str:
    # The name becomes a path component, so it must not be able to climb out of the registry.
    if not _MODEL_NAME.fullmatch(name):
        raise SpecError(
            f"model name {name!r}",
            [
                "must hold only lowercase letters, digits, '.', '-' or '_', start with a letter "
                "or digit and be at most 128 characters, e.g. 'iris-mlp'"
            ],
        )
    return name


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"


def _safetensors() -> types.ModuleType:
    """``safetensors.torch``, imported on first use: it loads torch, which the registry's
    readers of manifests, aliases and records (the CLI's listings, the data checks, Ray
    Data's preprocessing tasks) never need."""
    import safetensors.torch

    return safetensors.torch
