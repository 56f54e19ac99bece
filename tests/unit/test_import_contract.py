"""Packages inside the platform talk through each other's faces, and nothing is circular.

A *unit* is what sits directly under ``tandem/``: a subpackage (``tandem.serve``) or a
top-level module (``tandem.errors``, ``tandem.settings``, ``tandem.version``,
``tandem._lazy``), which is a face by itself. The root package ``tandem`` is the users'
front door. Imports at function level, under ``if TYPE_CHECKING:`` and through a lazy
export table (``tandem._lazy.lazy_exports``) count like any other.

Rules, for every module under ``platform/tandem``:

1. face: a module of unit P that imports from another unit Q writes
   ``from tandem.Q import name``, and when Q is a package, ``name`` is listed in the
   ``__all__`` of ``tandem/Q/__init__.py`` (which every subpackage defines). Never
   ``from tandem.Q.sub import x``, ``import tandem.Q[.sub]`` or ``from tandem.Q import sub``
   (a submodule as a name).
2. own-face: no module inside a package imports its own package's ``__init__``
   (``from tandem.P import x`` inside ``tandem.P``, even for a submodule ``x``); siblings
   import siblings directly (``from tandem.P.sub import x``, ``import tandem.P.sub as sub``).
3. root: nothing inside the platform imports the root package ``tandem`` (``import
   tandem``, ``from tandem import x``); only users, tests and jobs do.
4. cycles: the unit dependency graph (every import) is acyclic, and so is the graph of
   module-scope imports between modules (the ones that run when a module is imported).
5. ``import tandem`` and ``import tandem.cli`` load neither Ray nor torch (checked in a
   subprocess by ``test_front_doors_load_neither_ray_nor_torch``; the CLI builds its
   ``Client`` on a command's first use of it). A face that would load them for a few
   names exports those through ``tandem._lazy.lazy_exports``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "platform" / "tandem"
LAZY_EXPORTS = "lazy_exports"


@dataclass(frozen=True)
class Import:
    """One imported module (and, for ``from`` imports, the names taken from it)."""

    source: str  # the importing module, dotted
    path: Path
    line: int
    target: str  # the module named in the statement, absolute and dotted
    names: tuple[str, ...]  # empty for ``import target``
    runs_on_import: bool  # module scope, outside ``if TYPE_CHECKING:``

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root.parent)}:{self.line}"


def module_names(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, runs: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below ``node``, with whether it runs when the module is imported."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            child_runs = False
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            yield child.test, runs
            for body in child.body:
                yield body, False
                yield from _walk(body, False)
            for other in child.orelse:
                yield other, runs
                yield from _walk(other, runs)
            continue
        else:
            child_runs = runs
        yield child, child_runs
        yield from _walk(child, child_runs)


def _lazy_table(call: ast.Call) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``lazy_exports(__name__, {"tandem.P.sub": ("a", "b")})`` as (module, names)."""
    for arg in call.args:
        if isinstance(arg, ast.Dict):
            for key, value in zip(arg.keys, arg.values, strict=True):
                assert isinstance(key, ast.Constant) and isinstance(value, ast.Tuple | ast.List)
                names = tuple(e.value for e in value.elts if isinstance(e, ast.Constant))
                yield key.value, names


def imports(root: Path) -> list[Import]:
    """Every import in the package at ``root``, relative ones made absolute."""
    found = []
    for module, path in module_names(root).items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node, runs in _walk(ast.parse(path.read_text(), str(path)), True):
            if isinstance(node, ast.Import):
                found += [Import(module, path, node.lineno, a.name, (), runs) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = node.module or ""
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, *([target] if target else [])])
                names = tuple(a.name for a in node.names)
                found.append(Import(module, path, node.lineno, target, names, runs))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == LAZY_EXPORTS
            ):
                found += [
                    Import(module, path, node.lineno, target, names, False)
                    for target, names in _lazy_table(node)
                ]
    return [i for i in found if i.target.split(".")[0] == root.name]


def dunder_all(path: Path) -> list[str] | None:
    """The literal ``__all__`` of a module, or None when it has none."""
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = node.value
            assert isinstance(value, ast.List | ast.Tuple), f"{path}: __all__ must be a literal"
            return [e.value for e in value.elts if isinstance(e, ast.Constant)]
    return None


def unit(module: str) -> str:
    """``tandem.serve.app`` -> ``serve``; the root package itself is ``tandem``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def violations(root: Path) -> list[str]:
    """Every break of rules 1-3 in the package at ``root``, as ``file:line: rule: what``."""
    modules = module_names(root)
    faces = {m: dunder_all(p) for m, p in modules.items() if m.count(".") == 1}
    found = []
    for imp in imports(root):
        where, src, tgt = imp.where(root), imp.source, imp.target
        if tgt == root.name:
            if src != root.name:
                found.append(f"{where}: rule 3 (root): {src} imports the root package {tgt}")
            continue
        src_package = src if modules[src].name == "__init__.py" else src.rpartition(".")[0]
        if tgt == src_package and src != src_package:
            found.append(
                f"{where}: rule 2 (own-face): {src} imports its own package's __init__ "
                f"({tgt}); import the sibling module directly"
            )
            continue
        if unit(src) == unit(tgt):
            continue
        face = f"{root.name}.{unit(tgt)}"
        if tgt != face or not imp.names:
            form = f"from {tgt} import ..." if imp.names else f"import {tgt}"
            found.append(f"{where}: rule 1 (face): `{form}`; write `from {face} import name`")
            continue
        exported = faces.get(face)
        is_package = modules.get(face, Path()).name == "__init__.py"
        if is_package and exported is None:
            found.append(f"{where}: rule 1 (face): {face} has no __all__")
            continue
        for name in imp.names:
            if name.startswith("_") and not name.endswith("__"):
                found.append(f"{where}: rule 1 (face): {name} is private to {face}")
            elif f"{face}.{name}" in modules:
                found.append(
                    f"{where}: rule 1 (face): `from {face} import {name}` takes a submodule "
                    "as a name; import what it exports"
                )
            elif exported is not None and name not in exported:
                found.append(f"{where}: rule 1 (face): {name} is not in {face}.__all__")
    return found


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Cycles of ``graph``, each one broken (an edge dropped) before looking again."""
    graph = {k: set(v) for k, v in graph.items()}
    while cycle := _find_cycle(graph):
        yield cycle
        graph[cycle[-2]].discard(cycle[-1])


def unit_graph(root: Path) -> dict[str, dict[str, Import]]:
    """Unit -> unit it imports -> one import statement that does it."""
    graph: dict[str, dict[str, Import]] = {unit(m): {} for m in module_names(root)}
    for imp in imports(root):
        src, tgt = unit(imp.source), unit(imp.target)
        if src != tgt:
            graph[src].setdefault(tgt, imp)
    return graph


def module_graph(root: Path) -> dict[str, dict[str, Import]]:
    """Module -> module it imports when it is imported -> the statement that does it."""
    modules = module_names(root)
    graph: dict[str, dict[str, Import]] = {m: {} for m in modules}
    for imp in imports(root):
        if not imp.runs_on_import:
            continue
        named = [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in modules]
        for tgt in [imp.target, *named]:
            if tgt in modules and tgt != imp.source:
                graph[imp.source].setdefault(tgt, imp)
    return graph


def cycle_violations(root: Path) -> list[str]:
    """Rule 4: cycles among units (every import) and among modules (module scope)."""
    found = []
    for kind, graph in (("units", unit_graph(root)), ("modules", module_graph(root))):
        plain = {k: set(v) for k, v in graph.items()}
        for cycle in _cycles(plain):
            steps = [f"{a} -> {b} ({graph[a][b].where(root)})" for a, b in pairwise(cycle)]
            found.append(f"rule 4 (cycles): {kind}: " + "; ".join(steps))
    return found


def layers(root: Path) -> list[list[str]]:
    """Units in dependency order: each layer imports only from the layers before it."""
    graph = {k: set(v) for k, v in unit_graph(root).items()}
    placed: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(graph):
        layer = sorted(u for u, deps in graph.items() if u not in done and deps <= done)
        assert layer, "the unit graph has a cycle"
        placed.append(layer)
        done |= set(layer)
    return placed


def print_layers(root: Path = PACKAGE) -> None:
    for n, layer in enumerate(layers(root)):
        print(f"{n}: {', '.join(layer)}")


def test_packages_talk_through_faces_and_never_to_the_root() -> None:
    assert len(module_names(PACKAGE)) > 40
    found = violations(PACKAGE)
    assert not found, "\n".join(["rules 1-3 (see this module's docstring):", *found])


def test_no_import_cycles() -> None:
    found = cycle_violations(PACKAGE)
    assert not found, "\n".join(found)


def test_every_subpackage_has_a_face() -> None:
    inits = sorted(PACKAGE.glob("*/__init__.py"))
    assert [str(p.relative_to(PACKAGE)) for p in inits if dunder_all(p) is None] == []


SYNTHETIC = {
    "__init__.py": "",
    "errors.py": "class Oops(Exception): ...\n_hidden = 1\n",
    "a/__init__.py": "from tandem.a.inner import ok\n__all__ = ['ok']\n",
    "a/inner.py": "def ok() -> None: ...\nhidden = 1\n",
    "a/own.py": "from tandem.a import ok\n",  # rule 2
    "a/root.py": "def f():\n    import tandem\n",  # rule 3
    "a/deep.py": "from tandem.b.inner import x\n",  # rule 1 (submodule) and rule 4 (units)
    "a/hidden.py": "from tandem.b import y\n",  # rule 1 (not in __all__)
    "b/__init__.py": "from tandem.b.inner import x\n__all__ = ['x']\n",
    "b/inner.py": (
        "from tandem.errors import Oops\n"
        "x = 1\ny = 2\n"
        "def f():\n    from tandem.a import ok\n"  # rule 4 (units): b -> a -> b
    ),
    "b/sub.py": "from tandem.b import inner\n",  # rule 2 (a submodule of its own package)
    "b/cyc_one.py": "import tandem.b.cyc_two\n",  # rule 4 (modules)
    "b/cyc_two.py": "from tandem.b.cyc_one import *\n",
    "c/__init__.py": "from tandem.a import inner\n",  # rule 1 (submodule as a name), no __all__
    "d/__init__.py": (
        "from tandem._lazy import lazy_exports\n"
        "__getattr__ = lazy_exports(__name__, {'tandem.a.inner': ('hidden',)})\n"  # rule 1
        "__all__ = ['hidden']\n"
    ),
    "d/private.py": "from tandem.errors import _hidden\n",  # rule 1 (private)
    "d/uses_c.py": "from tandem.c import z\n",  # rule 1 (c has no __all__)
}


def test_the_checker_reports_each_rule(tmp_path: Path) -> None:
    for name, text in SYNTHETIC.items():
        path = tmp_path / "tandem" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    root = tmp_path / "tandem"
    found = violations(root)
    expected = [
        "tandem/a/deep.py:1: rule 1 (face): `from tandem.b.inner import ...`",
        "tandem/a/hidden.py:1: rule 1 (face): y is not in tandem.b.__all__",
        "tandem/c/__init__.py:1: rule 1 (face): `from tandem.a import inner` takes a submodule",
        "tandem/d/uses_c.py:1: rule 1 (face): tandem.c has no __all__",
        "tandem/d/__init__.py:2: rule 1 (face): `from tandem.a.inner import ...`",
        "tandem/d/private.py:1: rule 1 (face): _hidden is private to tandem.errors",
        "tandem/a/own.py:1: rule 2 (own-face): tandem.a.own imports its own package's",
        "tandem/b/sub.py:1: rule 2 (own-face): tandem.b.sub imports its own package's",
        "tandem/a/root.py:2: rule 3 (root): tandem.a.root imports the root package",
    ]
    for want in expected:
        assert [f for f in found if f.startswith(want)], (want, found)
    assert len(found) == len(expected), found
    cycles = cycle_violations(root)
    assert any(c.startswith("rule 4 (cycles): units: a -> b") for c in cycles), cycles
    assert any(
        c.startswith("rule 4 (cycles): modules: tandem.b.cyc_one -> tandem.b.cyc_two")
        for c in cycles
    ), cycles
    assert any("(tandem/b/inner.py:5)" in c for c in cycles), cycles


def test_layers_put_every_unit_after_what_it_imports() -> None:
    order = {u: n for n, layer in enumerate(layers(PACKAGE)) for u in layer}
    for src, deps in unit_graph(PACKAGE).items():
        assert all(order[d] < order[src] for d in deps), src
    assert order["tandem"] == max(order.values())


def heavy_modules(module: str, roots: set[str]) -> list[str]:
    """Modules under ``roots`` that ``import module`` loads, in a fresh interpreter."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    # -X importtime writes "import time: self | cumulative | <indent>name" per module.
    loaded = {line.rpartition("|")[2].strip() for line in run.stderr.splitlines()}
    return sorted(m for m in loaded if m.split(".")[0] in roots)


@pytest.mark.parametrize("module", ["tandem", "tandem.cli"])
def test_front_doors_load_neither_ray_nor_torch(module: str) -> None:
    heavy = heavy_modules(module, {"ray", "torch"})
    assert heavy == [], f"import {module} loads {len(heavy)} Ray/torch modules: {heavy[:3]}"


@pytest.mark.parametrize("module", ["tandem.sdk", "tandem.registry", "tandem.data.ingest"])
def test_what_needs_no_model_loads_no_torch(module: str) -> None:
    """The ``Client`` every CLI command builds, the registry's readers, and Ray Data's
    preprocessing tasks: each process pays about a second for torch it would not use."""
    heavy = heavy_modules(module, {"torch", "sklearn"})
    assert heavy == [], f"import {module} loads {len(heavy)} torch/sklearn modules: {heavy[:3]}"


if __name__ == "__main__":
    print_layers()
