"""The v2 protocol for one tabular model: every bad input gets a 400 that says what to send."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tandem.errors import RequestError
from tandem.registry.manifest import Manifest
from tandem.serve import protocol


def manifest(task: str = "classification", features: int = 3) -> Manifest:
    classification = task == "classification"
    return Manifest.model_validate(
        {
            "name": "toy",
            "version": 2,
            "created_at": "2026-01-01T00:00:00+00:00",
            "task": task,
            "factory": "tandem.models:mlp",
            "kwargs": {"hidden": [4]},
            "out_features": 3 if classification else 1,
            "input": {"features": [f"f{i}" for i in range(features)]},
            "preprocessing": {"mean": [0.0] * features, "std": [1.0] * features},
            "classes": [10, 20, 30] if classification else None,
            "metrics": {},
            "example": [0.0] * features,
            "weights": {"sha256": "0" * 64, "bytes": 0},
            "lineage": {
                "run_name": "r",
                "run_id": "r",
                "spec_sha256": "s",
                "datasets": [],
                "code_version": "c",
                "ray_version": "r",
                "torch_version": "t",
                "python_version": "p",
                "checkpoint": "c",
            },
        }
    )


def request(**tensor: Any) -> bytes:
    base: dict[str, Any] = {"name": "input", "shape": [2, 3], "datatype": "FP32"}
    base["data"] = [1, 2, 3, 4, 5, 6]
    return json.dumps({"id": "r1", "inputs": [{**base, **tensor}]}).encode()


def parse(body: bytes, max_rows: int = 100) -> protocol.InferRequest:
    return protocol.parse_infer_request(body, manifest(), max_rows)


def test_flat_and_nested_data_parse_to_the_same_rows() -> None:
    flat = parse(request())
    nested = parse(request(data=[[1, 2, 3], [4, 5, 6]], datatype="FP64"))
    assert flat.rows.dtype == np.float32 and flat.rows.shape == (2, 3)
    np.testing.assert_array_equal(flat.rows, nested.rows)
    assert flat.id == "r1" and flat.outputs is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"id": "x"}', 'missing "inputs"'),
        (b'{"inputs": []}', 'missing "inputs"'),
        (request(name="pixels"), "expects 'input'"),
        (request(shape=[2, 4], data=[0] * 8), "expected 3 features"),
        (request(shape=[3, 3]), "needs 9"),
        (request(shape=[2]), "must be [N, 3]"),
        (request(shape=[-1, 3]), "must be [N, 3]"),
        (request(datatype="INT64"), "unsupported datatype 'INT64'"),
        (request(datatype="BYTES"), "unsupported datatype"),
        (request(data=[1, 2, 3, 4, 5, float("nan")]), "NaN or Inf"),
        (request(data=[1, 2, 3, 4, 5, 1e39]), "NaN or Inf"),
        (request(shape=[0, 3], data=[]), "empty batch"),
        (request(data=[[1, 2], [3, 4, 5, 6]]), "ragged"),
        (request(data=["a", "b", "c", "d", "e", "f"]), "only numbers"),
        (request(data=[[1, 2], [3, 4], [5, 6]]), "nested"),
        (request(data="123456"), "must be a list"),
    ],
)
def test_bad_requests_get_400_saying_what_was_expected(body: bytes, fragment: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse(body)
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_nan_sent_as_json_literal_is_refused() -> None:
    body = request().replace(b"6]", b"NaN]")
    with pytest.raises(RequestError, match="NaN or Inf"):
        parse(body)


def test_too_many_rows_names_the_limit() -> None:
    with pytest.raises(RequestError, match="limit of 1") as caught:
        parse(request(), max_rows=1)
    assert caught.value.status == 400


def test_two_input_tensors_are_refused() -> None:
    tensor = {"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
    body = json.dumps({"inputs": [tensor, tensor]}).encode()
    with pytest.raises(RequestError, match="exactly one tensor"):
        parse(body)


def test_unknown_requested_output_is_refused() -> None:
    body = json.loads(request())
    body["outputs"] = [{"name": "logits"}]
    with pytest.raises(RequestError, match="unknown output"):
        parse(json.dumps(body).encode())


def test_classification_response_has_probabilities_and_labels() -> None:
    parsed = parse(request())
    outputs = {
        "probabilities": np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], dtype=np.float32),
        "label": np.array([30, 10], dtype=np.int64),
    }
    body = json.loads(protocol.infer_response(manifest(), parsed, outputs))
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
    answer = json.loads(protocol.infer_response(manifest(), parsed, outputs))
    assert [o["name"] for o in answer["outputs"]] == ["label"]


def test_regression_metadata_and_response() -> None:
    regression = manifest("regression")
    meta = protocol.model_metadata(regression, [1, 2])
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}]
    assert meta["outputs"] == [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]
    parsed = protocol.parse_infer_request(request(), regression, 10)
    body = json.loads(
        protocol.infer_response(regression, parsed, {"prediction": np.array([1.5, 2.5])})
    )
    assert body["outputs"][0]["data"] == [1.5, 2.5]
