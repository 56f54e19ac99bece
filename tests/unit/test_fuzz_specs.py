"""Fuzzed spec files: ``tandem validate`` accepts each or names every problem, never crashes.

Three families of files: arbitrary YAML documents, the shipped example specs with
random mutations, and raw text or bytes (broken YAML, unsafe tags, bad scalars).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tandem.cli import app
from tandem.errors import SpecError
from tandem.specs import DeploymentSpec, TrainJobSpec
from tandem.specs.base import read_yaml
from tandem.specs.cluster import ClusterSpec
from tandem.specs.files import validate_file

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_FILES = sorted(
    [REPO / "cluster.yaml", *REPO.glob("jobs/specs/*.yaml"), *REPO.glob("deployments/*.yaml")]
)
EXAMPLES = [yaml.safe_load(path.read_text()) for path in EXAMPLE_FILES]

# Top-level fields a problem may name although the file lacks them (a missing field).
SPEC_FIELDS = sorted(
    {*TrainJobSpec.model_fields, *DeploymentSpec.model_fields, *ClusterSpec.model_fields}
    | {"available_node_types", "applications"}
)
# Keys that steer validate_file to each spec kind and into each model's fields.
KNOWN_KEYS = sorted({*SPEC_FIELDS, "provider", "args", "resources"})
# Where a problem may point when it names no key: the file, a line, the whole document.
PLACE = re.compile(r"^(\(file\)|\(top level\)|line \d+): ")

# The tmp_path file is rewritten by every example, so sharing it is safe.
FUZZ = settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass(frozen=True)
class Raw:
    """A YAML token written unquoted, so the reader resolves its type or applies its tag."""

    text: str


@dataclass(frozen=True)
class Anchored:
    """A value written as ``&a <value>``; a later ``Raw("*a")`` refers back to it."""

    value: Any


RAW_TOKENS = [
    *("1", "-1", "0", "~", "yes", "off", ".nan", "-.inf", "1e999", "1:2:3", "0b2", "0x"),
    *("2024-01-01", "2024-13-45", "2001-12-14t21:59:43.10-05:00", "0x" + "f" * 1200, "9" * 5000),
    *("!!int x", "!!float ''", "!!bool maybe", "!!timestamp x", "!!binary '@@'", "!!set {a}"),
    *("!!str 5", "!!omap [a]", "!!python/object:os.system {}", "!!python/name:os.system ''"),
    *("!!python/object/apply:os.system ['true']", "*a", "*b", "<<", "=", "[a]", "{a: 1}", "? a"),
]
KEY_TOKENS = [Raw(text) for text in ("1", "~", "yes", "1.5", "2024-01-01", "<<", "[a]", "*a")]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["", "production", "tandem.models:mlp", "m", "-1", "null", "~"])
    | st.sampled_from(RAW_TOKENS).map(Raw)
)
keys = (
    st.sampled_from([*KNOWN_KEYS, "", "\ud800"]) | st.text(max_size=8) | st.sampled_from(KEY_TOKENS)
)


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    collections = st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5)
    return collections | collections.map(Anchored)


documents = st.recursive(scalars, containers, max_leaves=25)


def nested(depth: int, value: Any) -> Any:
    for level in range(depth):
        value = [value] if level % 2 else {"model": value}
    return value


# Deep enough to cross the reader's nesting limit (100) and PyYAML's own recursion (~300).
deep_documents = st.builds(nested, st.integers(min_value=0, max_value=400), documents)


def render(value: Any) -> str:
    """``value`` as flow-style YAML; ``Raw`` tokens and anchors are written as they are."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Anchored):
        return f"&a {render(value.value)}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render(k)}: {render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(item) for item in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}[str(value)]
    return json.dumps(value)  # JSON scalars are YAML scalars of the same type


# Block-style pieces and tokens, glued at random: mostly broken YAML, sometimes not.
raw_pieces = st.sampled_from(
    [
        *RAW_TOKENS,
        *("model", "applications", "provider", "dataset", "name", "args"),
        *("---", "...", "%YAML 1.1", "%TAG ! tag:yaml.org,2002:"),
        *("{", "}", "[", "]", ": ", "- ", ", ", "\n", "  ", "\t", "'", '"', "#", "|", ">", "&a "),
        *("\x00", "\ufeff", "\x85", "\ud800"),
    ]
)
raw_texts = st.lists(raw_pieces | st.text(max_size=6), max_size=30).map("".join)


def spec_file(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "spec.yaml"
    # A lone surrogate ("\ud800") becomes bytes that are not UTF-8, as in a damaged file.
    text = content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
    path.write_bytes(text)
    return path


def names_a_place(problem: str, data: Any) -> bool:
    """``problem`` starts with ``(file)``, ``line N``, ``(top level)``, a key of ``data``
    or a field of the spec (a missing one)."""
    if PLACE.match(problem):
        return True
    places = [str(key) for key in data] if isinstance(data, dict) else []
    places += SPEC_FIELDS
    return any(problem.startswith((f"{place}:", f"{place}.")) for place in places)


def assert_valid_or_spec_error(path: Path) -> None:
    try:
        validate_file(path)
    except SpecError as error:
        assert error.source == str(path)
        assert error.problems
        try:
            data = read_yaml(path)
        except SpecError:
            data = None  # unreadable: every problem must name the file or a line
        for problem in error.problems:
            assert names_a_place(problem, data), problem


@settings(FUZZ, max_examples=150)
@given(document=documents | deep_documents)
def test_any_yaml_document_is_accepted_or_reported_by_field(tmp_path: Path, document: Any) -> None:
    assert_valid_or_spec_error(spec_file(tmp_path, render(document)))


@st.composite
def mutated_examples(draw: st.DrawFn) -> Any:
    """A shipped spec with 1-3 random edits: drop, retype, add an unknown key, nest."""
    document = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        slots = value_slots(document)
        if not slots:
            break
        parent, key = draw(st.sampled_from(slots))
        edit = draw(st.sampled_from(["drop", "replace", "add", "nest"]))
        if edit == "drop":
            del parent[key]
        elif edit == "replace":
            parent[key] = draw(documents)
        elif edit == "add" and isinstance(parent[key], dict):
            parent[key][draw(keys)] = draw(documents)
        else:  # nest (and "add" where the value is no mapping)
            parent[key] = draw(st.sampled_from([[parent[key]], {draw(keys): parent[key]}]))
    return document


def value_slots(value: Any) -> list[tuple[Any, Any]]:
    """Every ``(container, key)`` of ``value``: the places a mutation can edit."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = list(enumerate(value))
    else:
        return []
    slots = []
    for key, item in pairs:
        slots += [(value, key), *value_slots(item)]
    return slots


def test_examples_can_be_mutated() -> None:
    assert len(EXAMPLES) >= 3 and all(value_slots(example) for example in EXAMPLES)


@settings(FUZZ, max_examples=150)
@given(document=mutated_examples())
def test_mutated_examples_are_accepted_or_reported_by_field(tmp_path: Path, document: Any) -> None:
    assert_valid_or_spec_error(spec_file(tmp_path, render(document)))


@settings(FUZZ, max_examples=200)
@given(content=raw_texts | st.text() | st.binary())
def test_raw_text_and_bytes_are_accepted_or_reported(tmp_path: Path, content: str | bytes) -> None:
    assert_valid_or_spec_error(spec_file(tmp_path, content))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("model: 2024-13-45\n", "line 1: not valid YAML: cannot read this timestamp"),
        ("a: 1\nmodel: !!float abc\n", "line 2: not valid YAML: cannot read this float"),
        ("model: !!bool maybe\n", "line 1: not valid YAML: cannot read this bool"),
        ("model: !!timestamp x\n", "line 1: not valid YAML: cannot read this timestamp"),
        (f"model: {'9' * 5000}\n", "line 1: not valid YAML: cannot read this int"),
        (f"model: 0x{'f' * 1200}\n", "integers must have fewer than 1000 digits"),
        ("model: " + "[" * 200 + "]" * 200, "line 1: not valid YAML: nested deeper than 100"),
        ("model: !!python/object:os.system {}\n", "could not determine a constructor"),
        ("applications: 5\n", "applications: expected a list of applications (got 5)"),
        ("model: m\nyes: 1\n", "True: keys must be strings; quote it (got True)"),
        (
            "cluster_name: c\nprovider: {type: local}\navailable_node_types: {1: {}}\n",
            "available_node_types.1: keys must be strings; quote it (got 1)",
        ),
    ],
)
def test_reader_and_structure_problems_name_their_place(
    tmp_path: Path, text: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as info:
        validate_file(spec_file(tmp_path, text))
    assert fragment in info.value.problems[0], info.value.problems


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        validate_file(spec_file(tmp_path, b"model: caf\xe9\n"))
    assert info.value.problems == ["(file): not UTF-8 text (byte 10); save it as UTF-8"]


def cli_check(tmp_path: Path, content: str | bytes) -> None:
    path = spec_file(tmp_path, content)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        # rich wraps long lines (the tmp path) at 80 columns
        assert result.exception is None and ": ok (" in " ".join(result.stdout.split())
    else:
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert ": invalid" in " ".join(result.stderr.split())


@settings(FUZZ, max_examples=15)
@given(content=(documents | deep_documents).map(render))
def test_cli_on_any_document_exits_0_or_1_without_traceback(tmp_path: Path, content: str) -> None:
    cli_check(tmp_path, content)


@settings(FUZZ, max_examples=15)
@given(content=mutated_examples().map(render))
def test_cli_on_mutated_examples_exits_0_or_1_without_traceback(
    tmp_path: Path, content: str
) -> None:
    cli_check(tmp_path, content)


@settings(FUZZ, max_examples=15)
@given(content=raw_texts | st.binary())
def test_cli_on_raw_text_exits_0_or_1_without_traceback(
    tmp_path: Path, content: str | bytes
) -> None:
    cli_check(tmp_path, content)
