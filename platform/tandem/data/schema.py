"""Check the Parquet schema against the dataset spec, before anything runs.

Each declared input becomes a draft ``InputSchema`` (columns, shape, dtype; nothing fitted
yet) or a problem line naming the spec field; the label becomes a ``TargetSchema``
draft. No Ray, no data read beyond the schema.
"""

from __future__ import annotations

import math
from typing import NoReturn

import pyarrow as pa

from tandem.errors import SpecError
from tandem.registry import InputSchema, TargetSchema
from tandem.specs import (
    DatasetSpec,
    ImageInput,
    SequenceInput,
    TabularInput,
    TensorInput,
    input_columns,
)

SpecInput = TabularInput | TensorInput | ImageInput | SequenceInput


def input_field(spec: DatasetSpec, index: int) -> str:
    """How a message names input ``index``: the ``features`` shorthand or ``inputs[i]``."""
    return "dataset.features" if spec.inputs is None else f"dataset.inputs[{index}]"


def draft_inputs(schema: pa.Schema, spec: DatasetSpec) -> list[InputSchema]:
    """One unfitted ``InputSchema`` per declared input; ``SpecError`` listing every problem."""
    problems: list[str] = []
    drafts = []
    for index, declared in enumerate(spec.model_inputs):
        field = input_field(spec, index)
        try:
            drafts.append(_draft(schema, declared, field))
        except SpecError as error:
            problems += error.problems
    if problems:
        raise SpecError("dataset", problems)
    return drafts


def _draft(schema: pa.Schema, declared: SpecInput, field: str) -> InputSchema:
    missing = [c for c in input_columns(declared) if c not in schema.names]
    if missing:
        key = "columns" if isinstance(declared, TabularInput) else "column"
        # The `features:` shorthand is itself the list of columns.
        where = field if field == "dataset.features" else f"{field}.{key}"
        raise SpecError(
            "dataset",
            [
                f"{where}: column {c!r} is not in the Parquet schema; "
                f"columns are {schema.names[:20]}"
                for c in missing
            ],
        )
    if isinstance(declared, TabularInput):
        return _tabular(schema, declared, field)
    kind = schema.field(declared.column).type
    if isinstance(declared, TensorInput):
        _check_tensor_type(kind, declared, field)
        shape, dtype = list(declared.shape), "float32"
    elif isinstance(declared, ImageInput):
        if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
            _fail(
                field, f"image column {declared.column!r} must be binary (encoded PNG/JPEG)", kind
            )
        shape, dtype = list(declared.shape), "float32"
    else:
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not (
            pa.types.is_integer(kind.value_type)
        ):
            _fail(field, f"sequence column {declared.column!r} must be a list of integers", kind)
        shape, dtype = [declared.max_length], "int64"
    return InputSchema(
        name=declared.name,
        kind=declared.kind,
        columns=[declared.column],
        shape=shape,
        dtype=dtype,
        normalize=getattr(declared, "normalize", "none"),
        example=[],
    )


def _tabular(schema: pa.Schema, declared: TabularInput, field: str) -> InputSchema:
    problems = []
    if len(declared.columns) == 1 and pa.types.is_fixed_size_list(
        schema.field(declared.columns[0]).type
    ):
        column = schema.field(declared.columns[0])
        if not _numeric(column.type.value_type):
            _fail(field, f"list column {column.name!r} must hold numbers", column.type)
        features = [f"{column.name}[{i}]" for i in range(column.type.list_size)]
    else:
        for name in declared.columns:
            kind = schema.field(name).type
            if not _numeric(kind):
                problems.append(f"{field}: column {name!r} must be numeric (got {kind})")
        features = list(declared.columns)
    if problems:
        raise SpecError("dataset", problems)
    return InputSchema(
        name=declared.name,
        kind="tabular",
        columns=list(declared.columns),
        shape=[len(features)],
        dtype="float32",
        features=features,
        normalize="fitted",
        example=[],
    )


def _check_tensor_type(kind: pa.DataType, declared: TensorInput, field: str) -> None:
    if isinstance(kind, pa.FixedShapeTensorType):
        if not _numeric(kind.value_type):
            _fail(field, f"tensor column {declared.column!r} must hold numbers", kind)
        if list(kind.shape) != declared.shape:
            _fail(
                field,
                f"tensor column {declared.column!r} stores shape {list(kind.shape)}, "
                f"but shape says {declared.shape}",
                kind,
            )
        return
    size, value = _flat_list(kind)
    if value is None or not _numeric(value):
        _fail(
            field,
            f"tensor column {declared.column!r} must be a fixed_shape_tensor or a "
            "fixed-size list of numbers",
            kind,
        )
    if size != math.prod(declared.shape):
        _fail(
            field,
            f"tensor column {declared.column!r} holds {size} values per row, "
            f"but shape {declared.shape} needs {math.prod(declared.shape)}",
            kind,
        )


def _flat_list(kind: pa.DataType) -> tuple[int, pa.DataType | None]:
    """Values per row and element type of a (nested) fixed-size list; (0, None) otherwise."""
    size = 1
    while pa.types.is_fixed_size_list(kind):
        size *= kind.list_size
        kind = kind.value_type
    return (size, kind) if size > 1 or _numeric(kind) else (0, None)


def draft_target(schema: pa.Schema, spec: DatasetSpec, task: str) -> TargetSchema:
    if spec.label not in schema.names:
        raise SpecError(
            "dataset",
            [
                f"dataset.label: column {spec.label!r} is not in the Parquet schema; "
                f"columns are {schema.names[:20]}"
            ],
        )
    kind = schema.field(spec.label).type
    if task == "classification":
        if not pa.types.is_integer(kind):
            _fail(
                "dataset.label",
                f"classification needs an integer label column; {spec.label!r} is {kind} "
                "(write class ids as integers, or set task: regression)",
                None,
            )
        return TargetSchema(classes=[])
    if _numeric(kind):
        return TargetSchema(shape=[])
    if pa.types.is_fixed_size_list(kind) and _numeric(kind.value_type):
        return TargetSchema(shape=[kind.list_size])
    _fail(
        "dataset.label",
        f"regression needs a numeric label column or a fixed-size list of numbers; "
        f"{spec.label!r} is {kind}",
        None,
    )


def _fail(field: str, message: str, kind: pa.DataType | None) -> NoReturn:
    got = f" (got {kind})" if kind is not None else ""
    raise SpecError("dataset", [f"{field}: {message}{got}"])


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))
