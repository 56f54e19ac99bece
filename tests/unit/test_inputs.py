"""Model inputs of every kind: spec rules, schema and content checks, fitting, and one
preprocessing implementation shared by training, serving and batch scoring (no Ray)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from torch import Tensor, nn

from factories import make_manifest
from tandem.batch.transform import Scorer
from tandem.data.columns import LABEL_KEY, input_key
from tandem.data.content import scan
from tandem.data.fit import FitPart, PartialFit, fitted
from tandem.data.ingest import ToTensors
from tandem.data.schema import draft_inputs, draft_target, input_field
from tandem.data.source import open_source
from tandem.errors import InputError, SpecError
from tandem.models import ModelRunner, build_model, inputs_info
from tandem.preprocess import encode_png
from tandem.registry import InputSchema, Manifest

ROWS = 12
INPUTS = [
    {"kind": "image", "name": "image", "column": "png", "shape": [3, 6, 6]},
    {"kind": "tensor", "name": "pixels", "column": "pixels", "shape": [2, 3, 3]},
    {"kind": "sequence", "name": "tokens", "column": "tokens", "max_length": 5},
    {"kind": "tabular", "name": "stats", "columns": ["r", "g"]},
]


def spec(**changes: Any) -> Any:
    from tandem.specs import DatasetSpec

    return DatasetSpec.model_validate({"train": "x", "inputs": INPUTS, "label": "label", **changes})


def table(rows: int = ROWS, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(rows, 3, 6, 6), dtype=np.uint8)
    pixels = rng.integers(0, 256, size=(rows, 2, 3, 3), dtype=np.uint8)
    tokens = [rng.integers(1, 20, size=rng.integers(1, 8)).tolist() for _ in range(rows)]
    return pa.table(
        {
            "png": pa.array([encode_png(i) for i in images], type=pa.binary()),
            "pixels": pa.FixedShapeTensorArray.from_numpy_ndarray(pixels),
            "tokens": pa.array(tokens, type=pa.list_(pa.int64())),
            "r": rng.normal(size=rows).astype(np.float32),
            "g": rng.normal(size=rows),
            "label": rng.integers(0, 3, size=rows),
        }
    )


def ray_batch(data: pa.Table) -> dict[str, np.ndarray]:
    """A Parquet batch as Ray Data's numpy format hands it to ``map_batches`` (checked
    against Ray 2.60: tensors as ndarrays, lists and binaries as object arrays)."""
    batch: dict[str, np.ndarray] = {}
    for name in data.column_names:
        column = data.column(name).combine_chunks()
        if isinstance(column.type, pa.FixedShapeTensorType):
            batch[name] = column.to_numpy_ndarray()
        elif pa.types.is_list(column.type) or pa.types.is_binary(column.type):
            values = column.to_pylist()
            batch[name] = np.empty(len(values), dtype=object)
            for row, value in enumerate(values):
                batch[name][row] = np.asarray(value) if isinstance(value, list) else value
        else:
            batch[name] = column.to_numpy()
    return batch


def written(tmp_path: Path, data: pa.Table, name: str = "train.parquet") -> Any:
    pq.write_table(data, tmp_path / name)
    return open_source(str(tmp_path / name), "dataset.train")


def two_by_two(inputs: dict[str, dict[str, Any]], out_features: int) -> nn.Module:
    """A user-style factory: no Tandem import, one layer per input, summed."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.names = list(inputs)
            layers = {}
            for name, info in inputs.items():
                if info["kind"] == "sequence":
                    layers[name] = nn.Sequential(
                        nn.Embedding(info["vocab_size"], 4),
                        nn.Flatten(),
                        nn.LazyLinear(out_features),
                    )
                else:
                    layers[name] = nn.Sequential(nn.Flatten(), nn.LazyLinear(out_features))
            self.branches = nn.ModuleDict(layers)

        def forward(self, *xs: Tensor) -> Tensor:
            return sum(self.branches[n](x) for n, x in zip(self.names, xs, strict=True))  # type: ignore[return-value]

    return Net()


def fitted_manifest(tmp_path: Path) -> tuple[Manifest, Any, pa.Table]:
    data = table()
    source = written(tmp_path, data)
    dataset = spec()
    drafts = draft_inputs(source.schema(), dataset)
    report = scan([source], drafts, [input_field(dataset, i) for i in range(len(drafts))])
    fit = PartialFit(drafts, "label", classification=True)
    parts = [
        FitPart.from_json(fit(ray_batch(data.slice(0, 5)))["part"][0]),
        FitPart.from_json(fit(ray_batch(data.slice(5)))["part"][0]),
    ]
    target = draft_target(source.schema(), dataset, "classification")
    inputs, target, rows = fitted(drafts, target, parts, report.max_ids)
    assert rows == ROWS
    manifest = make_manifest().model_copy(
        update={
            "factory": f"{__name__}:two_by_two",
            "kwargs": {},
            "inputs": inputs,
            "target": target,
            "out_features": len(target.classes or []),
        }
    )
    return manifest, dataset, data


def runner_for(manifest: Manifest) -> ModelRunner:
    torch.manual_seed(0)
    model = build_model(manifest.factory, {}, manifest.inputs, manifest.out_features)
    model(*(torch.zeros(1, *s.shape, dtype=getattr(torch, s.dtype)) for s in manifest.inputs))
    return ModelRunner(manifest, model.state_dict())


# --- the spec ---------------------------------------------------------------------


def test_features_is_shorthand_for_one_tabular_input() -> None:
    from tandem.specs import DatasetSpec

    dataset = DatasetSpec.model_validate({"train": "x", "features": ["a", "b"], "label": "y"})
    [only] = dataset.model_inputs
    assert (only.kind, only.name, only.columns) == ("tabular", "input", ["a", "b"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"features": ["r"]}, "exactly one of them"),
        ({"inputs": [*INPUTS, {**INPUTS[0], "column": "other"}]}, "input names must be unique"),
        ({"label": "r"}, "label column 'r' is also an input column"),
        ({"inputs": [{**INPUTS[0], "shape": [2, 6, 6]}]}, "channel count"),
        ({"inputs": [{**INPUTS[1], "shape": [0, 3]}]}, "greater than or equal to 1"),
        ({"inputs": [{"kind": "video", "name": "v", "column": "v"}]}, "does not match any"),
    ],
)
def test_bad_input_declarations_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**changes)


# --- schema and content checks ------------------------------------------------------


def test_drafts_of_every_kind(tmp_path: Path) -> None:
    drafts = draft_inputs(written(tmp_path, table()).schema(), spec())
    assert [(d.name, d.kind, d.shape, d.dtype) for d in drafts] == [
        ("image", "image", [3, 6, 6], "float32"),
        ("pixels", "tensor", [2, 3, 3], "float32"),
        ("tokens", "sequence", [5], "int64"),
        ("stats", "tabular", [2], "float32"),
    ]


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (
            {"png": pa.array(["x"] * ROWS)},
            r"dataset.inputs\[0\]: image column 'png' must be binary",
        ),
        (
            {
                "pixels": pa.FixedShapeTensorArray.from_numpy_ndarray(
                    np.zeros((ROWS, 3, 3), np.uint8)
                )
            },
            r"dataset.inputs\[1\]: tensor column 'pixels' stores shape \[3, 3\], but shape says",
        ),
        (
            {"pixels": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(ROWS * 4)), 4)},
            r"holds 4 values per row, but shape \[2, 3, 3\] needs 18",
        ),
        (
            {"tokens": pa.array([[0.5]] * ROWS)},
            r"dataset.inputs\[2\]: sequence column 'tokens' must be a list of integers",
        ),
    ],
)
def test_wrong_column_types_name_the_input(
    tmp_path: Path, replace: dict[str, pa.Array], message: str
) -> None:
    data = table()
    for name, values in replace.items():
        data = data.set_column(data.column_names.index(name), name, values)
    with pytest.raises(SpecError, match=message):
        draft_inputs(written(tmp_path, data).schema(), spec())


def test_missing_column_names_the_input(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"dataset.inputs\[2\].column: column 'tokens' is not in"):
        draft_inputs(written(tmp_path, table().drop_columns(["tokens"])).schema(), spec())


def test_vector_regression_label(tmp_path: Path) -> None:
    data = table().append_column(
        "target", pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(ROWS * 3)), 3)
    )
    schema = written(tmp_path, data).schema()
    assert draft_target(schema, spec(label="target"), "regression").shape == [3]
    with pytest.raises(SpecError, match="classification needs an integer"):
        draft_target(schema, spec(label="target"), "classification")


def test_content_scan_names_file_and_row_of_a_bad_image_and_a_negative_id(
    tmp_path: Path,
) -> None:
    data = table()
    images = data.column("png").to_pylist()
    images[7] = b"not an image"
    tokens = data.column("tokens").to_pylist()
    tokens[4] = [3, -2]
    data = data.set_column(0, "png", pa.array(images, type=pa.binary()))
    data = data.set_column(2, "tokens", pa.array(tokens, type=pa.list_(pa.int64())))
    source = written(tmp_path, data)
    drafts = draft_inputs(source.schema(), spec())
    with pytest.raises(SpecError) as info:
        scan([source], drafts, [input_field(spec(), i) for i in range(4)])
    problems = "\n".join(info.value.problems)
    assert "dataset.inputs[0]: row 7 of" in problems and "not a readable image" in problems
    assert "dataset.inputs[2]: row 4 of" in problems and "token id -2" in problems
    assert "train.parquet" in problems


def test_content_scan_finds_the_largest_token_id_over_every_split(tmp_path: Path) -> None:
    data = table()
    other = data.set_column(2, "tokens", pa.array([[41]] * ROWS, type=pa.list_(pa.int64())))
    sources = [written(tmp_path, data), written(tmp_path, other, "validation.parquet")]
    drafts = draft_inputs(sources[0].schema(), spec())
    report = scan(sources, drafts, [input_field(spec(), i) for i in range(4)])
    assert report.max_ids == {"tokens": 41}


# --- fitting and the one preprocessing implementation ---------------------------------


def test_fit_merges_block_parts_into_training_statistics(tmp_path: Path) -> None:
    manifest, _, data = fitted_manifest(tmp_path)
    image, pixels, tokens, stats = manifest.inputs
    decoded = np.stack([Image.open(io.BytesIO(b)).convert("RGB") for b in images_of(data)])
    np.testing.assert_allclose(image.mean, (decoded / 255.0).mean(axis=(0, 1, 2)), rtol=1e-5)
    raw_pixels = data.column("pixels").combine_chunks().to_numpy_ndarray().astype(np.float64)
    np.testing.assert_allclose(pixels.mean, raw_pixels.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(stats.std, [np.std(data["r"]), np.std(data["g"])], rtol=1e-5)
    assert tokens.vocab_size == max(max(t) for t in data.column("tokens").to_pylist()) + 1
    assert tokens.mean is None and image.example == base64.b64encode(images_of(data)[0]).decode()
    assert manifest.target.classes == sorted(set(data.column("label").to_pylist()))


def images_of(data: pa.Table) -> list[bytes]:
    return data.column("png").to_pylist()


def serving_raws(data: pa.Table) -> list[Any]:
    """The raws the v2 request parser builds: bytes, uint8 tensors, padded ids, floats."""
    tokens = data.column("tokens").to_pylist()
    padded = np.zeros((len(tokens), 5), dtype=np.int64)
    for row, ids in enumerate(tokens):
        padded[row, : min(5, len(ids))] = ids[:5]
    return [
        images_of(data),
        data.column("pixels").combine_chunks().to_numpy_ndarray(),
        padded,
        np.stack([data["r"].to_numpy(), data["g"].to_numpy()], axis=1).astype(np.float32),
    ]


def test_training_serving_and_batch_see_identical_inputs_for_every_kind(tmp_path: Path) -> None:
    manifest, dataset, data = fitted_manifest(tmp_path)
    runner = runner_for(manifest)
    training = ToTensors(manifest.inputs, manifest.target, dataset.label)(ray_batch(data))
    served = runner.prepare(serving_raws(data))
    for index, array in enumerate(served):
        np.testing.assert_array_equal(training[input_key(index)], array)
    assert training[input_key(2)].dtype == np.int64 and served[0].dtype == np.float32
    assert training[LABEL_KEY].tolist() == [
        manifest.target.classes.index(v)
        for v in data.column("label").to_pylist()  # type: ignore[union-attr]
    ]
    scored = Scorer(runner, id_column=None)(ray_batch(data))
    online = runner.predict(serving_raws(data))
    np.testing.assert_array_equal(scored["label"], online["label"])
    np.testing.assert_array_equal(scored["probabilities"], online["probabilities"])


def test_bad_served_values_raise_input_errors_naming_the_input(tmp_path: Path) -> None:
    manifest, _, data = fitted_manifest(tmp_path)
    runner = runner_for(manifest)
    raws = serving_raws(data)
    vocab = manifest.inputs[2].vocab_size
    assert vocab is not None
    cases = [
        (0, [b"junk", *raws[0][1:]], r"input 'image': row 0: not a readable image"),
        (2, np.full_like(raws[2], vocab), f"input 'tokens': row 0: token id {vocab} is outside"),
        (2, np.full_like(raws[2], -1), r"input 'tokens': row 0: token ids must be ≥ 0"),
    ]
    for index, bad, message in cases:
        with pytest.raises(InputError, match=message):
            runner.prepare([bad if i == index else r for i, r in enumerate(raws)])
    assert len(runner.predict(raws)["label"]) == ROWS  # and good values still work


def test_sequences_are_truncated_and_padded_to_max_length(tmp_path: Path) -> None:
    manifest, _, _ = fitted_manifest(tmp_path)
    tokens = manifest.inputs[2]
    from tandem.preprocess import model_array

    ragged = np.array([np.array([1, 2, 3, 4, 5, 6, 7]), np.array([9])], dtype=object)
    assert model_array(tokens, ragged).tolist() == [[1, 2, 3, 4, 5], [9, 0, 0, 0, 0]]


# --- the factory contract -------------------------------------------------------------


def test_factory_gets_plain_input_descriptions(tmp_path: Path) -> None:
    manifest, _, _ = fitted_manifest(tmp_path)
    info = inputs_info(manifest.inputs)
    assert list(info) == ["image", "pixels", "tokens", "stats"]
    assert info["tokens"] == {
        "kind": "sequence",
        "shape": [5],
        "dtype": "int64",
        "vocab_size": manifest.inputs[2].vocab_size,
    }
    assert info["image"] == {"kind": "image", "shape": [3, 6, 6], "dtype": "float32"}


def test_in_features_factories_get_one_flattened_input() -> None:
    tensor = InputSchema(
        name="pixels", kind="tensor", columns=["p"], shape=[1, 4, 4], dtype="float32", example=[]
    )
    model = build_model("tandem.models:mlp", {"hidden": [8]}, [tensor], 3)
    assert model(torch.zeros(2, 1, 4, 4)).shape == (2, 3)
    assert set(model.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    with pytest.raises(SpecError, match="takes in_features, so it fits one tabular or tensor"):
        build_model("tandem.models:mlp", {}, [tensor, tensor], 3)
