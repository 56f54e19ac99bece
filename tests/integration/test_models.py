"""Any PyTorch model end to end on a real embedded cluster: an image model from a PNG
column, a tensor model, a sequence model and a two-input model from the user's own
package are trained with ``ray job submit``, served, queried with ``tritonclient.http``
(binary tensors, its defaults) and with JSON, and batch-scored; every answer equals
the offline prediction of the registered version."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tritonclient.http as triton
import yaml

from tandem import Client
from tandem.cluster import jobs
from tandem.errors import SpecError
from tandem.models import ModelRunner, load_runner
from tandem.preprocess import gather
from tandem.registry import Manifest, Registry
from tandem.settings import Settings
from zoo import SPECS, Zoo, model_name

REPO = Path(__file__).resolve().parents[2]
CHUNK = 90  # rows per request: the validation split's 360 rows in four requests


@dataclass(frozen=True)
class Trained:
    manifest: Manifest
    runner: ModelRunner
    offline: np.ndarray
    """Labels the registered version predicts for the validation split, in this process."""


@pytest.fixture(scope="module")
def validation(cluster: Settings, zoo_jobs: Zoo) -> pd.DataFrame:
    return pd.read_parquet(cluster.home / "data" / "digits" / "validation.parquet")


@pytest.fixture(scope="module")
def trained(cluster: Settings, validation: pd.DataFrame, zoo_jobs: Zoo) -> dict[str, Trained]:
    """The four jobs, submitted together (the train pool runs what fits at once) by
    ``zoo_jobs``, usually while the modules with clusters of their own ran."""
    client = Client()
    found = {}
    for spec, submission in zoo_jobs.training.items():
        handle = jobs.attach(cluster, submission)
        status = handle.wait(timeout_s=900)
        assert status == "SUCCEEDED", handle.logs()[-4000:]
        runner = load_runner(Registry.default(client.settings), model_name(spec), "latest")
        frame = {c: validation[c].to_numpy() for c in validation.columns}
        raws = [gather(schema, frame) for schema in runner.manifest.inputs]
        found[spec] = Trained(runner.manifest, runner, runner.predict(raws)["label"])
    return found


def test_every_input_kind_trains_and_registers_a_version(
    trained: dict[str, Trained], validation: pd.DataFrame
) -> None:
    kinds = {spec: [i.kind for i in t.manifest.inputs] for spec, t in trained.items()}
    assert kinds == {
        "digits-image": ["image"],
        "digits-tensor": ["tensor"],
        "digits-sequence": ["sequence"],
        "digits-two-input": ["image", "tabular"],
    }
    for spec, least in SPECS.items():
        manifest = trained[spec].manifest
        assert manifest.metrics["val_accuracy"] >= least, (spec, manifest.metrics)
        assert manifest.lineage.submission_id and manifest.target.classes == list(range(10))
        accuracy = (trained[spec].offline == validation["label"].to_numpy()).mean()
        assert accuracy >= least, (spec, accuracy)
    sequence = trained["digits-sequence"].manifest.inputs[0]
    assert sequence.shape == [64] and sequence.vocab_size == 1025  # ids 1..1024, 0 pads
    two = trained["digits-two-input"].manifest
    assert two.code is not None and two.code.package == "my_models"
    assert trained["digits-image"].manifest.code is None


@pytest.fixture(scope="module")
def served(cluster: Settings, trained: dict[str, Trained]) -> Iterator[str]:
    client = Client()
    for spec in SPECS:
        client.deploy(
            {
                "model": model_name(spec),
                "version": trained[spec].manifest.version,
                "autoscaling": {"min_replicas": 1, "max_replicas": 1},
                "cpus_per_replica": 0.5,
            }
        )
    yield client.endpoint.removeprefix("http://")
    for spec in SPECS:
        client.undeploy(model_name(spec))


def triton_inputs(manifest: Manifest, frame: pd.DataFrame) -> list[triton.InferInput]:
    """Each input as a stock tritonclient user would build it from the Parquet columns."""
    built = []
    for schema in manifest.inputs:
        column = frame[schema.columns[0]].to_numpy()
        if schema.kind == "image":
            values = np.array(list(column), dtype=np.object_)
            datatype = "BYTES"
        elif schema.kind == "tensor":
            values = np.stack(list(column)).reshape(len(frame), *schema.shape)
            datatype = "UINT8"
        elif schema.kind == "sequence":
            width = max(len(ids) for ids in column)
            values = np.zeros((len(frame), width), dtype=np.int64)
            for row, ids in enumerate(column):
                values[row, : len(ids)] = ids
            datatype = "INT64"
        else:
            values = frame[schema.columns].to_numpy(np.float32)
            datatype = "FP32"
        tensor = triton.InferInput(schema.name, list(values.shape), datatype)
        tensor.set_data_from_numpy(values)  # binary_data=True: tritonclient's default
        built.append(tensor)
    return built


def test_tritonclient_with_its_defaults_gets_the_offline_labels(
    served: str, trained: dict[str, Trained], validation: pd.DataFrame
) -> None:
    server = triton.InferenceServerClient(url=served)
    assert server.is_server_live() and server.get_server_metadata()["name"] == "tandem"
    for spec, model in trained.items():
        name = model_name(spec)
        metadata = server.get_model_metadata(name)
        assert [i["name"] for i in metadata["inputs"]] == [i.name for i in model.manifest.inputs]
        labels = []
        for start in range(0, len(validation), CHUNK):
            chunk = validation.iloc[start : start + CHUNK]
            result = server.infer(
                name,
                triton_inputs(model.manifest, chunk),
                outputs=[triton.InferRequestedOutput("label")],
            )
            labels.append(result.as_numpy("label"))
        np.testing.assert_array_equal(np.concatenate(labels), model.offline, err_msg=spec)
    server.close()


def test_json_requests_get_the_offline_labels(
    served: str, trained: dict[str, Trained], validation: pd.DataFrame
) -> None:
    with Client() as client:
        for spec, model in trained.items():
            served_labels = client.predict(model_name(spec), validation)["label"]
            np.testing.assert_array_equal(served_labels, model.offline, err_msg=spec)


def test_batch_inference_equals_online_serving_row_for_row(
    cluster: Settings,
    served: str,
    trained: dict[str, Trained],
    validation: pd.DataFrame,
    zoo_jobs: Zoo,
) -> None:
    """``tandem batch-predict`` of each version, submitted as soon as it registered."""
    with Client() as client:
        for spec, (submission, output) in zoo_jobs.batch_jobs().items():
            jobs.attach(cluster, submission).wait(timeout_s=900)
            scored = pd.read_parquet(output)
            assert list(scored.columns) == ["row", "probabilities", "label"], spec
            assert scored["row"].tolist() == list(range(len(validation)))
            online = client.predict(model_name(spec), validation)
            np.testing.assert_array_equal(scored["label"].to_numpy(), online["label"])
            np.testing.assert_allclose(
                np.stack(scored["probabilities"].to_numpy()), online["probabilities"], atol=1e-6
            )
        assert set(zoo_jobs.scoring) == set(SPECS)


def json_request(frame: pd.DataFrame, **replace: dict[str, object]) -> dict[str, object]:
    """A JSON v2 request for the two-input model, with some tensors replaced."""
    inputs = {
        "image": {
            "name": "image",
            "datatype": "BYTES",
            "shape": [len(frame)],
            "data": [base64.b64encode(b).decode() for b in frame["image"]],
        },
        "stats": {
            "name": "stats",
            "datatype": "FP32",
            "shape": [len(frame), 2],
            "data": frame[["ink", "ink_top_half"]].to_numpy().reshape(-1).tolist(),
        },
    }
    for name, changes in replace.items():
        inputs[name] = {**inputs[name], **changes}
    return {"inputs": list(inputs.values())}


def binary_request(values: np.ndarray, declared: int) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "tokens",
                    "datatype": "INT64",
                    "shape": list(values.shape),
                    "parameters": {"binary_data_size": declared},
                }
            ]
        }
    ).encode()
    return header + values.astype("<i8").tobytes(), {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def test_bad_tensors_get_4xx_naming_the_input_and_the_replica_keeps_serving(
    served: str, trained: dict[str, Trained], validation: pd.DataFrame
) -> None:
    rows = validation.iloc[:3]
    two = f"http://{served}/v2/models/{model_name('digits-two-input')}/infer"
    seq = f"http://{served}/v2/models/{model_name('digits-sequence')}/infer"
    vocab = trained["digits-sequence"].manifest.inputs[0].vocab_size
    assert vocab is not None
    ids = np.ones((3, 4), dtype=np.int64)
    cases = [
        (two, json_request(rows, image={"data": [base64.b64encode(b"junk").decode()] * 3})),
        (two, json_request(rows, stats={"datatype": "INT64"})),
        (two, json_request(rows, stats={"shape": [3, 3]})),
        (two, json_request(rows, image={"shape": [2]})),
        (seq, binary_request(ids, declared=ids.nbytes - 8)),
        (seq, binary_request(np.full((3, 4), vocab), declared=ids.nbytes)),
        (seq, binary_request(np.ones((3, 65), dtype=np.int64), declared=3 * 65 * 8)),
    ]
    expected_input = ["image", "stats", "stats", "image", "tokens", "tokens", "tokens"]
    with httpx.Client(timeout=30) as http:
        for (url, request), name in zip(cases, expected_input, strict=True):
            if isinstance(request, tuple):
                answer = http.post(url, content=request[0], headers=request[1])
            else:
                answer = http.post(url, json=request)
            assert 400 <= answer.status_code < 500, (name, answer.text)
            assert f"'{name}'" in answer.json()["error"], answer.text
            good = http.post(two, json=json_request(rows))
            assert good.status_code == 200, good.text
        body, headers = binary_request(ids, declared=ids.nbytes)
        assert http.post(seq, content=body, headers=headers).status_code == 200


def test_an_undecodable_image_fails_before_submission(
    cluster: Settings, trained: dict[str, Trained]
) -> None:
    data = pq.read_table(cluster.home / "data" / "digits" / "train.parquet")
    images = data.column("image").to_pylist()
    images[5] = b"\x89PNG but not really"
    broken = data.set_column(
        data.column_names.index("image"), "image", pa.array(images, type=pa.binary())
    )
    path = cluster.home / "data" / "broken" / "train.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(broken, path)
    spec = yaml.safe_load((REPO / "jobs" / "specs" / "digits-image.yaml").read_text())
    spec["dataset"]["train"] = str(path)
    with Client() as client:
        before = len(client.jobs())
        with pytest.raises(SpecError) as error:
            client.submit(spec)
        assert len(client.jobs()) == before
    assert "dataset.inputs[0]: row 5 of" in str(error.value)
    assert "not a readable image" in str(error.value)
