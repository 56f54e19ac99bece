"""Shared machinery of every spec: strict pydantic models loaded from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import Node

from tandem.errors import SpecError

MAX_YAML_DEPTH = 100
"""Deepest nesting of lists and mappings a spec file may use (real specs use about 4)."""
MAX_INT_DIGITS = 1000
"""Longest integer a spec file may hold; longer ones cannot even be printed in a message."""
_INT_LIMIT = 10**MAX_INT_DIGITS


class Spec(BaseModel):
    """Base of all specs: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


SpecT = TypeVar("SpecT", bound=Spec)


def describe(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, for the ``(got X)`` of a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(error: ValidationError) -> list[str]:
    """One ``path.to.field: what is wrong (got X)`` line per pydantic error."""
    lines = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        if item["type"] == "missing":
            lines.append(f"{path}: required field is missing")
            continue
        lines.append(f"{path}: {message} (got {describe(item['input'])})")
    return lines


def non_string_keys(data: Any) -> list[str]:
    """One problem per mapping key that is not a string. YAML reads ``1:``, ``yes:`` or
    ``~:`` as int, bool or None; specs are JSON-like (kwargs go into JSON manifests,
    Ray's cluster schema is a JSON Schema)."""
    problems: list[str] = []
    _walk_keys(data, "", set(), problems)
    return problems


def _walk_keys(value: Any, path: str, seen: set[int], problems: list[str]) -> None:
    # ``seen``: containers already walked, since YAML anchors can make a cycle.
    if not isinstance(value, (dict, list)) or id(value) in seen:
        return
    seen.add(id(value))
    pairs = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    for key, item in pairs:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict) and not isinstance(key, str):
            problems.append(f"{where}: keys must be strings; quote it (got {describe(key)})")
        _walk_keys(item, where, seen, problems)


def parse(cls: type[SpecT], data: Any, source: str) -> SpecT:
    """Validate ``data`` as ``cls``; raise ``SpecError`` listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(source, [f"(top level): expected a mapping of keys (got {describe(data)})"])
    problems = non_string_keys(data)
    if problems:
        raise SpecError(source, problems)
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise SpecError(source, format_validation_error(error)) from None


class _SpecLoader(yaml.SafeLoader):
    """``SafeLoader`` that turns every malformed document into a ``YAMLError`` with its line.

    PyYAML itself recurses once per nesting level (``RecursionError`` on deep input) and
    lets its scalar constructors fail with whatever ``int()``, ``float()``, ``datetime``
    or a dict lookup raise (``!!int x``, ``2024-13-01``, ``!!bool maybe``).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self._depth >= MAX_YAML_DEPTH:
            raise ComposerError(
                None,
                None,
                f"nested deeper than {MAX_YAML_DEPTH} levels",
                self.peek_event().start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep)
            if isinstance(value, int) and abs(value) >= _INT_LIMIT:
                raise ValueError(f"integers must have fewer than {MAX_INT_DIGITS} digits")
        except (ValueError, LookupError, AttributeError) as error:
            raise ConstructorError(
                None,
                None,
                f"cannot read this {node.tag.removeprefix('tag:yaml.org,2002:')}: {error}",
                node.start_mark,
            ) from None
        return value


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning syntax errors into a ``SpecError`` naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(str(path), [f"(file): cannot read it: {error.strerror}"]) from None
    except UnicodeDecodeError as error:
        raise SpecError(
            str(path), [f"(file): not UTF-8 text (byte {error.start}); save it as UTF-8"]
        ) from None
    try:
        return yaml.load(text, Loader=_SpecLoader)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f"line {where.line + 1}" if where is not None else "(file)"
        raise SpecError(str(path), [f"{line}: not valid YAML: {error}"]) from None


def load(cls: type[SpecT], source: str | Path | dict[str, Any] | SpecT) -> SpecT:
    """A spec given as an object, a dict or a YAML path, validated as ``cls``."""
    if isinstance(source, cls):
        return source
    if isinstance(source, dict):
        return parse(cls, source, cls.__name__)
    if isinstance(source, (str, Path)):
        return parse(cls, read_yaml(source), str(source))
    raise TypeError(f"expected a {cls.__name__}, a dict or a YAML path, got {type(source)!r}")
