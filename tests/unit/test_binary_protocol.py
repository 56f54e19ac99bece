"""The binary tensor data extension: tensors as raw bytes after the JSON header, in and out.

Bodies are built by hand here (the spec's framing, byte by byte) and by tritonclient's own
request builder and response parser, so both sides of the wire are checked.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from test_protocol import IMAGES, MULTI, manifest, multi_tensors

from tandem.errors import Rejected
from tandem.serve import protocol
from tandem.serve.binary import byte_elements, encode_byte_elements
from tandem.serve.statuses import status_of

STATS = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
PIXELS = np.full((2, 2, 2, 2), 7, dtype=np.uint8)
TOKENS = np.array([[1, 2], [3, 0]], dtype=np.int64)
CHUNKS = {
    "stats": STATS.tobytes(),
    "pixels": PIXELS.tobytes(),
    "photo": encode_byte_elements(IMAGES),
    "tokens": TOKENS.tobytes(),
}
DATATYPES = {"stats": "FP32", "pixels": "UINT8", "photo": "BYTES", "tokens": "INT64"}


def binary_tensor(name: str, size: int | None = None) -> dict[str, Any]:
    tensor = {k: v for k, v in multi_tensors()[name].items() if k != "data"}
    size = len(CHUNKS[name]) if size is None else size
    return tensor | {"datatype": DATATYPES[name], "parameters": {"binary_data_size": size}}


def framed(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, str]:
    """The body and its Inference-Header-Content-Length."""
    head = json.dumps(header).encode()
    return head + b"".join(chunks), str(len(head))


def all_binary(**sizes: int) -> tuple[bytes, str]:
    names = ["tokens", "stats", "photo", "pixels"]  # any order: the data follows it
    tensors = [binary_tensor(name, sizes.get(name)) for name in names]
    return framed({"inputs": tensors}, *(CHUNKS[name] for name in names))


def parse_framed(body: bytes, length: str | None) -> protocol.InferRequest:
    return protocol.parse_infer_request(body, MULTI, 100, length)


def refused(body: bytes, length: str | None) -> str:
    with pytest.raises(Rejected) as caught:
        parse_framed(body, length)
    assert status_of(caught.value) == 400
    return caught.value.message


def test_binary_inputs_parse_to_the_same_raws_as_json() -> None:
    as_json = protocol.parse_infer_request(
        json.dumps({"inputs": list(multi_tensors().values())}).encode(), MULTI, 100
    )
    as_binary = parse_framed(*all_binary())
    for json_raw, binary_raw in zip(as_json.raws, as_binary.raws, strict=True):
        if isinstance(json_raw, np.ndarray):
            assert json_raw.dtype == binary_raw.dtype
            np.testing.assert_array_equal(json_raw, binary_raw)
        else:
            assert json_raw == binary_raw == IMAGES


def test_json_and_binary_inputs_mix_in_one_request() -> None:
    tensors = multi_tensors()
    header = {"inputs": [tensors["stats"], binary_tensor("photo"), tensors["pixels"]]}
    header["inputs"].append(binary_tensor("tokens"))
    parsed = parse_framed(*framed(header, CHUNKS["photo"], CHUNKS["tokens"]))
    assert parsed.raws[2] == IMAGES and parsed.raws[3].tolist() == TOKENS.tolist()


def test_a_binary_size_that_does_not_fit_the_shape_names_the_input() -> None:
    header = {"inputs": [binary_tensor("stats", 20), *list(multi_tensors().values())[1:]]}
    message = refused(*framed(header, CHUNKS["stats"][:20]))
    assert message == (
        "input 'stats': binary_data_size is 20 bytes, but FP32 of shape [2, 3] takes 24"
    )


def test_a_body_shorter_than_the_declared_sizes_names_the_input() -> None:
    body, length = all_binary()
    message = refused(body[:-3], length)  # pixels, the last, lost 3 bytes
    assert message.startswith("input 'pixels': binary_data_size is 16 bytes, but only 13 bytes")


def test_a_body_longer_than_the_declared_sizes_names_the_last_binary_input() -> None:
    body, length = all_binary()
    assert refused(body + b"xyz", length).startswith(
        "input 'pixels': the body holds 3 more bytes after this input's binary data"
    )


def test_bytes_after_a_json_only_request_are_refused() -> None:
    body, length = framed({"inputs": list(multi_tensors().values())}, b"junk")
    assert "4 bytes after the JSON header, but no input declares" in refused(body, length)


def test_a_header_length_past_the_body_is_refused() -> None:
    body, _ = all_binary()
    message = refused(body, str(len(body) + 1))
    assert f"the whole body has only {len(body)}" in message


@pytest.mark.parametrize("length", ["-1", "abc", "²", "9" * 30, ""])
def test_a_header_length_that_is_not_a_byte_count_is_refused(length: str) -> None:
    body, _ = all_binary()
    assert "Inference-Header-Content-Length must be" in refused(body, length)


def test_a_header_length_inside_the_json_makes_it_invalid_json() -> None:
    body, length = all_binary()
    assert "not valid JSON" in refused(body, str(int(length) - 1))


def test_binary_data_without_the_header_length_names_the_input() -> None:
    body, _ = all_binary()
    header = body[: body.index(b"}]}") + 3]
    assert refused(header, None).startswith(
        "input 'tokens': parameters.binary_data_size needs the Inference-Header-Content-Length"
    )


@pytest.mark.parametrize("size", [-1, True, "24", 2.5])
def test_a_binary_size_that_is_not_a_byte_count_names_the_input(size: Any) -> None:
    tensors = multi_tensors()
    tensors["stats"]["parameters"] = {"binary_data_size": size}
    tensors["stats"].pop("data")
    message = refused(*framed({"inputs": list(tensors.values())}))
    assert message.startswith("input 'stats': binary_data_size must be a byte count")


def test_data_and_binary_data_at_once_names_the_input() -> None:
    tensors = multi_tensors()
    tensors["stats"]["parameters"] = {"binary_data_size": 24}
    message = refused(*framed({"inputs": list(tensors.values())}, CHUNKS["stats"]))
    assert message == (
        "input 'stats': send either \"data\" or parameters.binary_data_size, not both"
    )


def test_non_finite_binary_floats_are_refused() -> None:
    tensors = multi_tensors()
    nan = np.array([[1, 2, 3], [4, 5, np.nan]], dtype=np.float32).tobytes()
    header = {"inputs": [binary_tensor("stats"), *list(tensors.values())[1:]]}
    assert "input 'stats': data holds NaN or Inf" in refused(*framed(header, nan))


@pytest.mark.parametrize(
    ("chunk", "fragment"),
    [
        (b"\x05\x00", "BYTES element 0: its 4-byte length is cut off"),
        (struct.pack("<I", 9) + b"abc", "BYTES element 0 says 9 bytes, but only 3 are left"),
        (encode_byte_elements([b"a"]), "holds 1 BYTES elements and 0 bytes more"),
        (encode_byte_elements([b"a", b"b", b"c"]), "shape [2] needs exactly 2 elements"),
    ],
)
def test_bad_bytes_encodings_name_the_input(chunk: bytes, fragment: str) -> None:
    tensors = multi_tensors()
    photo = binary_tensor("photo", len(chunk))
    header = {"inputs": [tensors["stats"], tensors["pixels"], photo, tensors["tokens"]]}
    message = refused(*framed(header, chunk))
    assert message.startswith("input 'photo': ") and fragment in message


def test_bytes_elements_round_trip_including_empty_ones() -> None:
    elements = [b"", b"\x00\x01", b"x" * 300]
    encoded = encode_byte_elements(elements)
    assert byte_elements("photo", memoryview(encoded), 3) == elements


OUTPUTS = {
    "probabilities": np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], dtype=np.float32),
    "label": np.array([30, 10], dtype=np.int64),
}


def respond(header: dict[str, Any]) -> protocol.InferResponse:
    request = {"inputs": [multi_tensors()["stats"] | {"name": "input"}], **header}
    parsed = protocol.parse_infer_request(json.dumps(request).encode(), manifest(), 10)
    return protocol.infer_response(manifest(), parsed, OUTPUTS)


def split(answer: protocol.InferResponse) -> tuple[dict[str, Any], bytes]:
    assert answer.json_length is not None
    return json.loads(answer.body[: answer.json_length]), answer.body[answer.json_length :]


def test_binary_data_output_sends_every_output_as_bytes_after_the_json() -> None:
    head, data = split(respond({"parameters": {"binary_data_output": True}}))
    assert [o["name"] for o in head["outputs"]] == ["probabilities", "label"]
    assert all("data" not in o for o in head["outputs"])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert sizes == [24, 16] and len(data) == 40
    probabilities = np.frombuffer(data[:24], "<f4").reshape(2, 3)
    np.testing.assert_array_equal(probabilities, OUTPUTS["probabilities"])
    assert np.frombuffer(data[24:], "<i8").tolist() == [30, 10]


def test_an_outputs_binary_data_overrides_the_request_default() -> None:
    outputs = [{"name": "label", "parameters": {"binary_data": False}}, {"name": "probabilities"}]
    head, data = split(respond({"parameters": {"binary_data_output": True}, "outputs": outputs}))
    by_name = {o["name"]: o for o in head["outputs"]}
    assert by_name["label"]["data"] == [30, 10]
    assert by_name["probabilities"]["parameters"] == {"binary_data_size": 24} and len(data) == 24
    only_label = [{"name": "label", "parameters": {"binary_data": True}}]
    head, data = split(respond({"outputs": only_label}))
    assert [o["name"] for o in head["outputs"]] == ["label"] and len(data) == 16


def test_json_responses_stay_json() -> None:
    answer = respond({"outputs": [{"name": "label", "parameters": {"binary_data": False}}]})
    assert answer.json_length is None and json.loads(answer.body)["outputs"][0]["data"] == [30, 10]


@pytest.mark.parametrize(
    "header",
    [
        {"parameters": {"binary_data_output": "yes"}},
        {"parameters": [1]},
        {"outputs": [{"name": "label", "parameters": {"binary_data": 1}}]},
    ],
)
def test_binary_flags_that_are_not_booleans_are_refused(header: dict[str, Any]) -> None:
    with pytest.raises(Rejected) as caught:
        respond(header)
    assert status_of(caught.value) == 400


def test_tritonclients_request_builder_and_response_parser_agree_with_the_server() -> None:
    inputs = [
        triton.InferInput("stats", [2, 3], "FP32").set_data_from_numpy(STATS),
        triton.InferInput("pixels", [2, 2, 2, 2], "UINT8").set_data_from_numpy(PIXELS),
        triton.InferInput("photo", [2], "BYTES").set_data_from_numpy(np.array(IMAGES, object)),
        triton.InferInput("tokens", [2, 2], "INT64").set_data_from_numpy(TOKENS),
    ]
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, request_id="t")
    parsed = parse_framed(body, str(json_size))
    assert parsed.raws[2] == IMAGES and parsed.id == "t"
    assert parsed.binary == {"probabilities", "label"}
    answer = protocol.infer_response(MULTI, parsed, OUTPUTS)
    result = triton.InferenceServerClient.parse_response_body(
        answer.body, header_length=answer.json_length
    )
    np.testing.assert_array_equal(result.as_numpy("probabilities"), OUTPUTS["probabilities"])
    np.testing.assert_array_equal(result.as_numpy("label"), OUTPUTS["label"])
