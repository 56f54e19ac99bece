"""The v2 protocol as JSON: metadata for every input kind, requests carrying all of a model's
inputs, and a 400 naming the input for every bad tensor."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from factories import make_manifest
from tandem.errors import Rejected
from tandem.registry import InputSchema, Manifest, TargetSchema
from tandem.serve import protocol
from tandem.serve.statuses import status_of


def tabular(name: str = "input", features: int = 3) -> InputSchema:
    return InputSchema(
        name=name,
        kind="tabular",
        columns=[f"f{i}" for i in range(features)],
        shape=[features],
        dtype="float32",
        features=[f"f{i}" for i in range(features)],
        example=[0.0] * features,
    )


def tensor(name: str = "pixels", shape: tuple[int, ...] = (2, 2, 2)) -> InputSchema:
    size = int(np.prod(shape))
    return InputSchema(
        name=name,
        kind="tensor",
        columns=[name],
        shape=list(shape),
        dtype="float32",
        example=[0.0] * size,
    )


def image(name: str = "photo") -> InputSchema:
    return InputSchema(
        name=name, kind="image", columns=[name], shape=[1, 8, 8], dtype="float32", example=""
    )


def sequence(name: str = "tokens", max_length: int = 6, vocab: int = 50) -> InputSchema:
    return InputSchema(
        name=name,
        kind="sequence",
        columns=[name],
        shape=[max_length],
        dtype="int64",
        vocab_size=vocab,
        example=[1, 2],
    )


def manifest(
    task: str = "classification",
    inputs: list[InputSchema] | None = None,
    target_shape: list[int] | None = None,
) -> Manifest:
    classification = task == "classification"
    target = TargetSchema(classes=[10, 20, 30]) if classification else TargetSchema()
    if target_shape is not None:
        target = TargetSchema(shape=target_shape)
    return make_manifest().model_copy(
        update={
            "name": "toy",
            "version": 2,
            "task": task,
            "out_features": 3 if classification else (target_shape or [1])[0],
            "inputs": inputs or [tabular()],
            "target": target,
        }
    )


MULTI = manifest(inputs=[tabular("stats"), tensor(), image(), sequence()])


def request(**tensor: Any) -> bytes:
    base: dict[str, Any] = {"name": "input", "shape": [2, 3], "datatype": "FP32"}
    base["data"] = [1, 2, 3, 4, 5, 6]
    return json.dumps({"id": "r1", "inputs": [{**base, **tensor}]}).encode()


def parse(body: bytes, max_rows: int = 100, model: Manifest | None = None) -> protocol.InferRequest:
    return protocol.parse_infer_request(body, model or manifest(), max_rows)


def test_flat_and_nested_data_parse_to_the_same_rows() -> None:
    flat = parse(request())
    nested = parse(request(data=[[1, 2, 3], [4, 5, 6]], datatype="FP64"))
    (rows,) = flat.raws
    assert rows.dtype == np.float32 and rows.shape == (2, 3) and flat.rows == 2
    np.testing.assert_array_equal(rows, nested.raws[0])
    assert flat.id == "r1" and flat.outputs == ("probabilities", "label") and not flat.binary


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"id": "x"}', 'missing "inputs"'),
        (b'{"inputs": []}', 'missing "inputs"'),
        (b'{"inputs": [5]}', '"inputs"[0] must be an object'),
        (request(name="pixels"), "unknown input tensor 'pixels'; this model expects ['input']"),
        (request(shape=[2, 4], data=[0] * 8), "input 'input': expected 3 features"),
        (request(shape=[3, 3]), "input 'input': \"data\" holds 6 values but shape [3, 3] needs 9"),
        (request(shape=[2]), "input 'input': \"shape\" must be [N, 3]"),
        (request(shape=[-1, 3]), "must be [N, 3]"),
        (request(shape=[True, 3]), "must be [N, 3]"),
        (request(datatype="INT64"), "input 'input': unsupported datatype 'INT64'"),
        (request(datatype="BYTES"), "send FP32 or FP64"),
        (request(data=[1, 2, 3, 4, 5, float("nan")]), "input 'input': data holds NaN or Inf"),
        (request(data=[1, 2, 3, 4, 5, 1e39]), "NaN or Inf"),
        (request(shape=[0, 3], data=[]), "input 'input': empty batch"),
        (request(data=[[1, 2], [3, 4, 5, 6]]), "input 'input': \"data\" is ragged"),
        (request(data=["a", "b", "c", "d", "e", "f"]), "must hold only numbers"),
        (request(data=[True] * 6), "must hold only numbers"),
        (request(data=[[1, 2], [3, 4], [5, 6]]), "nested"),
        (request(data="123456"), "input 'input': \"data\" must be a list"),
        (request(parameters=[1]), "input 'input': \"parameters\" must be an object"),
    ],
)
def test_bad_requests_get_400_saying_what_was_expected(body: bytes, fragment: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse(body)
    assert status_of(caught.value) == 400
    assert fragment in caught.value.message


def test_nan_sent_as_json_literal_is_refused() -> None:
    body = request().replace(b"6]", b"NaN]")
    with pytest.raises(Rejected, match="NaN or Inf"):
        parse(body)


def test_too_many_rows_names_the_limit_and_the_input() -> None:
    with pytest.raises(Rejected) as caught:
        parse(request(), max_rows=1)
    assert status_of(caught.value) == 400
    assert caught.value.message == (
        "input 'input': batch of 2 rows exceeds this deployment's limit of 1"
    )


def test_an_input_sent_twice_is_refused() -> None:
    tensor = {"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
    body = json.dumps({"inputs": [tensor, tensor]}).encode()
    with pytest.raises(Rejected, match="input 'input': sent twice"):
        parse(body)


def test_unknown_requested_output_is_refused() -> None:
    body = json.loads(request())
    body["outputs"] = [{"name": "logits"}]
    with pytest.raises(Rejected, match="unknown output"):
        parse(json.dumps(body).encode())


def test_classification_response_has_probabilities_and_labels() -> None:
    parsed = parse(request())
    outputs = {
        "probabilities": np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], dtype=np.float32),
        "label": np.array([30, 10], dtype=np.int64),
    }
    answer = protocol.infer_response(manifest(), parsed, outputs)
    assert answer.json_length is None
    body = json.loads(answer.body)
    assert body["model_name"] == "toy" and body["model_version"] == "2" and body["id"] == "r1"
    by_name = {o["name"]: o for o in body["outputs"]}
    assert by_name["probabilities"]["shape"] == [2, 3]
    assert by_name["probabilities"]["datatype"] == "FP32"
    assert by_name["label"] == {
        "name": "label",
        "datatype": "INT64",
        "shape": [2],
        "data": [30, 10],
    }


def test_requested_outputs_filter_the_response() -> None:
    body = json.loads(request())
    body["outputs"] = [{"name": "label"}]
    parsed = parse(json.dumps(body).encode())
    outputs = {"probabilities": np.zeros((2, 3)), "label": np.array([1, 2])}
    answer = json.loads(protocol.infer_response(manifest(), parsed, outputs).body)
    assert [o["name"] for o in answer["outputs"]] == ["label"]


def test_non_finite_outputs_get_422() -> None:
    parsed = parse(request())
    outputs = {"probabilities": np.full((2, 3), np.nan), "label": np.array([1, 2])}
    with pytest.raises(Rejected) as caught:
        protocol.infer_response(manifest(), parsed, outputs)
    assert status_of(caught.value) == 422


def test_regression_metadata_and_response() -> None:
    regression = manifest("regression")
    meta = protocol.model_metadata(regression, [1, 2])
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}]
    assert meta["outputs"] == [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]
    parsed = protocol.parse_infer_request(request(), regression, 10)
    answer = protocol.infer_response(regression, parsed, {"prediction": np.array([1.5, 2.5])})
    assert json.loads(answer.body)["outputs"][0]["data"] == [1.5, 2.5]


def test_vector_regression_predicts_k_values_per_row() -> None:
    meta = protocol.model_metadata(manifest("regression", target_shape=[2]), [1])
    assert meta["outputs"] == [{"name": "prediction", "datatype": "FP32", "shape": [-1, 2]}]


def test_metadata_lists_every_input_with_its_datatype_and_shape() -> None:
    meta = protocol.model_metadata(MULTI, [2])
    assert meta["inputs"] == [
        {"name": "stats", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "pixels", "datatype": "FP32", "shape": [-1, 2, 2, 2]},
        {"name": "photo", "datatype": "BYTES", "shape": [-1]},
        {"name": "tokens", "datatype": "INT64", "shape": [-1, -1]},
    ]
    assert meta["outputs"][0] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}


def test_server_metadata_announces_binary_tensor_data() -> None:
    meta = protocol.server_metadata()
    assert meta["name"] == "tandem" and meta["extensions"] == ["binary_tensor_data"]
    assert isinstance(meta["version"], str)


IMAGES = [b"\x89PNG first", b"\x89PNG second"]


def multi_tensors() -> dict[str, dict[str, Any]]:
    """A good two-row request for ``MULTI``, tensor by tensor."""
    images = [base64.b64encode(i).decode() for i in IMAGES]
    tokens = [[1, 2], [3, 0]]
    return {
        "stats": {"name": "stats", "shape": [2, 3], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6]},
        "pixels": {"name": "pixels", "shape": [2, 2, 2, 2], "datatype": "UINT8", "data": [7] * 16},
        "photo": {"name": "photo", "shape": [2], "datatype": "BYTES", "data": images},
        "tokens": {"name": "tokens", "shape": [2, 2], "datatype": "INT32", "data": tokens},
    }


def multi_body(order: list[str] | None = None, **changes: dict[str, Any]) -> bytes:
    tensors = multi_tensors()
    for name, change in changes.items():
        tensors[name] = tensors[name] | change
    names = order or list(tensors)
    return json.dumps({"inputs": [tensors[name] for name in names]}).encode()


def test_multi_input_request_in_any_order_parses_to_raws_in_manifest_order() -> None:
    parsed = parse(multi_body(order=["tokens", "photo", "stats", "pixels"]), model=MULTI)
    stats, pixels, photos, tokens = parsed.raws
    assert parsed.rows == 2
    assert stats.dtype == np.float32 and stats.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 2, 2, 2)
    assert photos == IMAGES
    assert tokens.dtype == np.int64 and tokens.tolist() == [[1, 2], [3, 0]]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"stats": {"name": "extra"}}, "unknown input tensor 'extra'"),
        ({"pixels": {"datatype": "INT64"}}, "input 'pixels': unsupported datatype 'INT64'"),
        ({"pixels": {"shape": [2, 2, 2, 3]}}, "input 'pixels': expected rows of shape [2, 2, 2]"),
        ({"pixels": {"shape": [2, 8]}}, "input 'pixels': \"shape\" must be [N, 2, 2, 2]"),
        ({"pixels": {"data": [256] * 16}}, "input 'pixels': \"data\" holds values outside"),
        ({"pixels": {"data": [0.5] * 16}}, "input 'pixels': UINT8 \"data\" must hold only"),
        ({"photo": {"datatype": "FP32"}}, "input 'photo': unsupported datatype 'FP32'"),
        ({"photo": {"shape": [2, 1]}}, "input 'photo': \"shape\" must be [N]"),
        ({"photo": {"data": ["%%%", "AAAA"]}}, "input 'photo': \"data\"[0] is not valid base64"),
        ({"photo": {"data": [1, 2]}}, "input 'photo': \"data\"[0] must be a base64 string"),
        ({"photo": {"data": ["AAAA"]}}, "input 'photo': \"data\" must be a list of 2 base64"),
        ({"tokens": {"datatype": "FP32"}}, "input 'tokens': unsupported datatype 'FP32'"),
        ({"tokens": {"data": [[1.5, 2], [3, 0]]}}, "input 'tokens': INT32 \"data\" must"),
        ({"tokens": {"shape": [2, 7], "data": [0] * 14}}, "input 'tokens': sequences must hold"),
        ({"tokens": {"shape": [2, 0], "data": []}}, "sequences must hold 1 to 6 token ids"),
        ({"tokens": {"data": [2**31, 0, 0, 0]}}, "outside the INT32 range"),
        ({"tokens": {"shape": [1, 2], "data": [1, 2]}}, "input 'tokens': has 1 rows but"),
    ],
)
def test_a_bad_tensor_of_a_multi_input_model_gets_400_naming_it(
    changes: dict[str, dict[str, Any]], fragment: str
) -> None:
    with pytest.raises(Rejected) as caught:
        parse(multi_body(**changes), model=MULTI)
    assert status_of(caught.value) == 400
    assert fragment in caught.value.message


def test_a_missing_input_is_named() -> None:
    with pytest.raises(Rejected, match="input 'photo': missing from the request"):
        parse(multi_body(order=["stats", "pixels", "tokens"]), model=MULTI)


def test_tensor_inputs_accept_floats_and_refuse_non_finite_ones() -> None:
    floats = {"datatype": "FP32", "data": [0.5] * 16}
    pixels = parse(multi_body(pixels=floats), model=MULTI).raws[1]
    assert pixels.dtype == np.float32 and pixels.shape == (2, 2, 2, 2)
    with pytest.raises(Rejected, match="input 'pixels': data holds NaN"):
        parse(multi_body(pixels={"datatype": "FP64", "data": [1e300] * 16}), model=MULTI)
