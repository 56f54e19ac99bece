"""A stock OIP v2 client over real HTTP: ``tritonclient.http`` with its defaults (inputs and
outputs as binary data) against the plain uvicorn server, for two-input models of every
input kind. No Ray: the server is ``tandem.serve.plain``'s app in a thread."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pytest
import torch
import tritonclient.http as triton
from torch import nn
from tritonclient.utils import InferenceServerException

import loopback
from factories import make_runner
from tandem.models import ModelRunner
from tandem.preprocess import encode_png
from tandem.registry import InputSchema, TargetSchema
from tandem.serve.plain import plain_app

VOCAB = 30


class TwoInputs(nn.Module):
    """A user's model: one small encoder per input, concatenated, then a linear head."""

    def __init__(self, inputs: dict[str, dict[str, Any]], out_features: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(encoder(info) for info in inputs.values())
        self.head = nn.Linear(4 * len(inputs), out_features)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([e(x) for e, x in zip(self.encoders, inputs, strict=True)], 1))


def encoder(info: dict[str, Any]) -> nn.Module:
    if info["kind"] == "image":
        conv = nn.Conv2d(info["shape"][0], 4, kernel_size=3, padding=1)
        return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if info["kind"] == "sequence":
        return nn.EmbeddingBag(info["vocab_size"], 4, mode="mean", padding_idx=0)
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(info["shape"])), 4))


def two_inputs(inputs: dict[str, dict[str, Any]], out_features: int) -> nn.Module:
    """The factory, as a user writes it: no Tandem import."""
    return TwoInputs(inputs, out_features)


def png(seed: int) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, (1, 8, 8), dtype=np.uint8))


PHOTO = InputSchema(
    name="photo",
    kind="image",
    columns=["photo"],
    shape=[1, 8, 8],
    dtype="float32",
    normalize="fitted",
    mean=[0.5],
    std=[0.25],
    example=base64.b64encode(png(0)).decode(),
)
STATS = InputSchema(
    name="stats",
    kind="tabular",
    columns=["a", "b", "c"],
    shape=[3],
    dtype="float32",
    features=["a", "b", "c"],
    example=[1.0, 2.0, 3.0],
)
PIXELS = InputSchema(
    name="pixels",
    kind="tensor",
    columns=["pixels"],
    shape=[3, 2, 2],
    dtype="float32",
    normalize="fitted",
    mean=[120.0, 110.0, 100.0],
    std=[70.0, 70.0, 70.0],
    example=[9.0] * 12,
)
TOKENS = InputSchema(
    name="tokens",
    kind="sequence",
    columns=["tokens"],
    shape=[8],
    dtype="int64",
    vocab_size=VOCAB,
    example=[4, 5, 6],
)


def runner(name: str, inputs: list[InputSchema]) -> ModelRunner:
    return make_runner(
        name=name,
        factory=f"{__name__}:two_inputs",
        kwargs={},
        inputs=inputs,
        target=TargetSchema(classes=[3, 5, 7]),
    )


def serving(model: ModelRunner) -> AbstractContextManager[str]:
    """The plain server on 127.0.0.1 (a port the OS picks) until the block ends."""
    return loopback.serving(plain_app(model))


@pytest.fixture(scope="module")
def photos() -> Iterator[tuple[ModelRunner, triton.InferenceServerClient]]:
    model = runner("photos", [PHOTO, STATS])
    with serving(model) as address:
        client = triton.InferenceServerClient(address)
        yield model, client
        client.close()


@pytest.fixture(scope="module")
def texts() -> Iterator[tuple[ModelRunner, triton.InferenceServerClient]]:
    model = runner("texts", [PIXELS, TOKENS])
    with serving(model) as address:
        client = triton.InferenceServerClient(address)
        yield model, client
        client.close()


def tensor(name: str, values: np.ndarray, datatype: str, binary: bool = True) -> triton.InferInput:
    return triton.InferInput(name, list(values.shape), datatype).set_data_from_numpy(
        values, binary_data=binary
    )


def photo_request(rows: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    images = [png(seed + row) for row in range(rows)]
    stats = np.random.default_rng(seed).normal(size=(rows, 3)).astype(np.float32)
    return images, stats


def test_server_and_model_metadata(photos: tuple[ModelRunner, Any]) -> None:
    _, client = photos
    server = client.get_server_metadata()
    assert server["name"] == "tandem" and "binary_tensor_data" in server["extensions"]
    model = client.get_model_metadata("photos")
    assert model["inputs"] == [
        {"name": "photo", "datatype": "BYTES", "shape": [-1]},
        {"name": "stats", "datatype": "FP32", "shape": [-1, 3]},
    ]
    assert model["versions"] == ["1"]


def test_binary_images_and_floats_get_the_runners_labels(photos: tuple[ModelRunner, Any]) -> None:
    model, client = photos
    images, stats = photo_request(rows=5, seed=1)
    inputs = [  # in another order than the model's
        tensor("stats", stats, "FP32"),
        tensor("photo", np.array(images, dtype=object), "BYTES"),
    ]
    result = client.infer("photos", inputs, request_id="r7")
    expected = model.predict([images, stats])
    assert result.get_response()["id"] == "r7"
    np.testing.assert_array_equal(result.as_numpy("label"), expected["label"])
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected["probabilities"])


def test_json_and_binary_mix_in_inputs_and_outputs(photos: tuple[ModelRunner, Any]) -> None:
    model, client = photos
    images, stats = photo_request(rows=2, seed=9)
    inputs = [
        tensor("photo", np.array(images, dtype=object), "BYTES"),
        tensor("stats", stats.astype(np.float64), "FP64", binary=False),
    ]
    outputs = [triton.InferRequestedOutput("label", binary_data=False)]
    result = client.infer("photos", inputs, outputs=outputs)
    assert result.as_numpy("label").tolist() == model.predict([images, stats])["label"].tolist()
    assert result.as_numpy("probabilities") is None  # not asked for


def test_a_bad_image_is_a_400_naming_it_and_the_server_keeps_serving(
    photos: tuple[ModelRunner, Any],
) -> None:
    model, client = photos
    images, stats = photo_request(rows=3, seed=2)
    broken = [images[0], b"\x89PNG but not really", images[2]]
    inputs = [
        tensor("photo", np.array(broken, dtype=object), "BYTES"),
        tensor("stats", stats, "FP32"),
    ]
    with pytest.raises(InferenceServerException) as caught:
        client.infer("photos", inputs)
    assert caught.value.status() == "400"
    assert "input 'photo': row 1: not a readable image" in caught.value.message()
    inputs[0] = tensor("photo", np.array(images, dtype=object), "BYTES")
    labels = client.infer("photos", inputs).as_numpy("label")
    assert labels.tolist() == model.predict([images, stats])["label"].tolist()


def test_uint8_tensors_and_int64_tokens(texts: tuple[ModelRunner, Any]) -> None:
    model, client = texts
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(4, 3, 2, 2), dtype=np.uint8)
    tokens = rng.integers(1, VOCAB, size=(4, 5), dtype=np.int64)
    tokens[2, 3:] = 0  # padding
    inputs = [tensor("pixels", pixels, "UINT8"), tensor("tokens", tokens, "INT64")]
    result = client.infer("texts", inputs)
    expected = model.predict([pixels, tokens])
    np.testing.assert_array_equal(result.as_numpy("label"), expected["label"])
    tokens[1, 0] = VOCAB
    inputs[1] = tensor("tokens", tokens, "INT64")
    with pytest.raises(InferenceServerException, match="input 'tokens': row 1: token id 30"):
        client.infer("texts", inputs)
    int32 = tensor("tokens", np.minimum(tokens, VOCAB - 1).astype(np.int32), "INT32")
    assert len(client.infer("texts", [inputs[0], int32]).as_numpy("label")) == 4
