"""User model code that travels with a version: packed at registration, imported by Serve
replicas and batch actors from a folder of its own. Code the user wrote, imported — never
unpickled.

A factory's top-level package is shipped when it is neither Tandem's nor installed (in
site-packages or the standard library): that is code reaching the job through Ray's
``py_modules`` or ``working_dir``, which a replica started later would not have.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import shutil
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from tandem.errors import RegistryError
from tandem.registry import CodeRef

CACHE_FOLDER = "tandem-code"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIPPED = ("__pycache__", ".pyc", ".pyo")


def user_package(factory: str) -> tuple[str, Path] | None:
    """The factory's top-level package name and its source (a folder or one ``.py``), when
    it is user code to ship; ``None`` for Tandem's zoo and installed packages."""
    top = factory.partition(":")[0].split(".")[0]
    spec = importlib.util.find_spec(top)
    if top == "tandem" or spec is None or spec.origin in (None, "built-in", "frozen"):
        return None
    origin = Path(spec.origin).resolve()
    installed = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    if any(origin.is_relative_to(Path(p).resolve()) for p in installed):
        return None
    return top, origin.parent if origin.name == "__init__.py" else origin


def pack(source: Path) -> bytes:
    """A zip of the package (folder or module file) with sorted names and fixed times, so
    the same source always gives the same bytes (and sha256)."""
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            if any(part in _SKIPPED or part.endswith(_SKIPPED) for part in path.parts):
                continue
            name = path.relative_to(source.parent).as_posix()
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def install_code(ref: CodeRef, data: bytes) -> Path:
    """Unpack ``data`` (already sha256-checked) into a folder named by its sha256 and put
    that folder first on ``sys.path``; returns the folder."""
    folder = Path(tempfile.gettempdir()) / CACHE_FOLDER / ref.sha256
    if not folder.exists():
        _unpack(data, folder)
    loaded = sys.modules.get(ref.package)
    if loaded is not None:
        where = Path(getattr(loaded, "__file__", "") or "").resolve()
        if not where.is_relative_to(folder.resolve()):
            raise RegistryError(
                f"package {ref.package!r} is already imported from {where}; a process can "
                "hold one copy of a package, so versions shipping different code of "
                f"{ref.package!r} cannot be served by the same replica"
            )
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
        importlib.invalidate_caches()
    return folder


def _unpack(data: bytes, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts:
                raise RegistryError(f"code archive holds an unsafe path {name!r}")
        archive.extractall(staging)
    try:
        os.rename(staging, folder)  # atomic: a concurrent actor sees all of it or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not folder.exists():
            raise
