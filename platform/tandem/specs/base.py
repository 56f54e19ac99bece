"""Shared machinery of every spec: strict pydantic models loaded from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tandem.errors import SpecError


class Spec(BaseModel):
    """Base of all specs: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


SpecT = TypeVar("SpecT", bound=Spec)


def _describe(value: Any) -> str:
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
        lines.append(f"{path}: {message} (got {_describe(item['input'])})")
    return lines


def parse(cls: type[SpecT], data: Any, source: str) -> SpecT:
    """Validate ``data`` as ``cls``; raise ``SpecError`` listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(
            source, [f"(top level): expected a mapping of keys (got {_describe(data)})"]
        )
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise SpecError(source, format_validation_error(error)) from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning syntax errors into a ``SpecError`` naming the line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError(str(path), [f"(file): cannot read it: {error.strerror}"]) from None
    try:
        return yaml.safe_load(text)
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
