"""The SDK's pure parts: v2 request/response on the client side, DataFrames, spec files."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from factories import make_manifest
from tandem.batch.config import BatchPredictSpec
from tandem.errors import RequestError, SpecError
from tandem.sdk.entrypoints import batch_entrypoint
from tandem.sdk.inference import infer_body, parse_outputs, raise_for_status
from tandem.sdk.serving import frame_inputs
from tandem.specs.files import deployment_specs

REPO = Path(__file__).resolve().parents[2]


def test_infer_body_is_a_flat_fp32_v2_tensor() -> None:
    body = infer_body(np.array([[1, 2], [3, 4]], dtype=np.float64), "input")
    assert body == {
        "inputs": [
            {"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}
        ]
    }
    with pytest.raises(ValueError, match="2-D"):
        infer_body(np.zeros(3), "input")


def test_outputs_come_back_with_their_type_and_shape() -> None:
    outputs = parse_outputs(
        {
            "outputs": [
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [2, 2],
                    "data": [0.1, 0.9, 0.8, 0.2],
                },
                {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]},
            ]
        }
    )
    assert outputs["probabilities"].dtype == np.float32 and outputs["probabilities"].shape == (2, 2)
    assert outputs["label"].dtype == np.int64 and outputs["label"].tolist() == [1, 0]


def test_server_errors_keep_their_message_and_status() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1/v2/models/m/infer")
    response = httpx.Response(400, json={"error": "expected 4 features per row"}, request=request)
    with pytest.raises(RequestError) as error:
        raise_for_status(response)
    assert error.value.status == 400 and "expected 4 features per row" in error.value.message


def test_dataframe_columns_are_reordered_to_the_model_features() -> None:
    manifest = make_manifest()
    features = manifest.inputs[0].features
    frame = pd.DataFrame({name: [float(i), float(i + 10)] for i, name in enumerate(features)})
    shuffled = frame[list(reversed(features))].assign(extra=[7, 8])
    inputs = frame_inputs(shuffled, manifest)
    assert list(inputs) == ["input"]
    np.testing.assert_array_equal(inputs["input"], frame.to_numpy(np.float32))
    with pytest.raises(SpecError, match="sepal_length"):
        frame_inputs(frame.drop(columns=["sepal_length"]), manifest)


def test_a_serve_config_file_yields_each_tandem_app() -> None:
    specs = deployment_specs(REPO / "deployments" / "digits-mlp.yaml")
    assert [s.model for s in specs] == ["digits-mlp"] and specs[0].version == "production"
    assert deployment_specs({"model": "m"})[0].version == "production"


def test_batch_entrypoint_carries_the_whole_spec() -> None:
    spec = BatchPredictSpec(model="m", version=2, input="/in", output="/out", id_column="id")
    words = shlex.split(batch_entrypoint(spec))
    assert words[:3] == ["python", "-m", "tandem.batch.main"]
    assert BatchPredictSpec.model_validate(json.loads(words[-1])) == spec
