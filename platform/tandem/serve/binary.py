"""The binary tensor data extension of the v2 protocol (as Triton and KServe implement it).

A request may carry tensors as raw bytes after its JSON header: the
``Inference-Header-Content-Length`` header gives the JSON's length, and each binary input
says how many of the following bytes are its own (``parameters.binary_data_size``), in
the order the inputs are listed. Numbers are little-endian and row-major; a BYTES tensor
is, per element, a 4-byte little-endian length and then that many bytes. A response is
framed the same way. Pure byte handling; ``protocol`` decides what the tensors mean.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from tandem.errors import MalformedRequest

HEADER_LENGTH = "inference-header-content-length"
"""HTTP header giving the length of the JSON part of a request or response body."""
WIRE_TYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "UINT8": np.dtype("u1"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
}
"""Numeric OIP datatypes and their little-endian layout on the wire."""
_LENGTH = struct.Struct("<I")


def bad_input(name: str, message: str) -> MalformedRequest:
    """A malformed request naming the input, worded like ``InputError``."""
    return MalformedRequest(f"input {name!r}: {message}")


def split_body(body: bytes, declared: str | None) -> tuple[bytes, memoryview | None]:
    """The JSON header and the binary data after it (``None`` without the header)."""
    if declared is None:
        return body, None
    if not (declared.isascii() and declared.isdigit() and len(declared) <= 20):
        raise MalformedRequest(
            f"Inference-Header-Content-Length must be the JSON header's length in bytes "
            f"(got {declared[:40]!r})"
        )
    length = int(declared)
    if length > len(body):
        raise MalformedRequest(
            f"Inference-Header-Content-Length says the JSON header is {length} bytes, but the "
            f"whole body has only {len(body)}"
        )
    return body[:length], memoryview(body)[length:]


def cut_chunks(sizes: Sequence[tuple[str, int]], tail: memoryview | None) -> dict[str, memoryview]:
    """Each binary input's bytes: ``sizes`` lists ``(input, binary_data_size)`` in request
    order; together they must cover the data after the JSON header exactly."""
    if tail is None:
        if sizes:
            raise bad_input(
                sizes[0][0],
                "parameters.binary_data_size needs the Inference-Header-Content-Length "
                "header, set to the length of the JSON part of the body",
            )
        return {}
    chunks: dict[str, memoryview] = {}
    offset = 0
    for name, size in sizes:
        if offset + size > len(tail):
            raise bad_input(
                name,
                f"binary_data_size is {size} bytes, but only {len(tail) - offset} bytes of the "
                "body are left for it",
            )
        chunks[name] = tail[offset : offset + size]
        offset += size
    extra = len(tail) - offset
    if extra and sizes:
        raise bad_input(
            sizes[-1][0],
            f"the body holds {extra} more bytes after this input's binary data; the inputs' "
            "binary_data_size must add up to the bytes after the JSON header",
        )
    if extra:
        raise MalformedRequest(
            f"the body holds {extra} bytes after the JSON header, but no input declares "
            "parameters.binary_data_size"
        )
    return chunks


def numbers(chunk: memoryview, shape: Sequence[int], datatype: str) -> np.ndarray:
    """A numeric tensor from raw bytes of exactly its size (a read-only view of them)."""
    return np.frombuffer(chunk, dtype=WIRE_TYPES[datatype]).reshape(shape)


def byte_elements(name: str, chunk: memoryview, count: int) -> list[bytes]:
    """The ``count`` elements of a BYTES tensor: each a 4-byte length, then its bytes."""
    elements: list[bytes] = []
    offset = 0
    while offset < len(chunk) and len(elements) < count:
        if offset + _LENGTH.size > len(chunk):
            raise bad_input(name, f"BYTES element {len(elements)}: its 4-byte length is cut off")
        (size,) = _LENGTH.unpack_from(chunk, offset)
        offset += _LENGTH.size
        if offset + size > len(chunk):
            raise bad_input(
                name,
                f"BYTES element {len(elements)} says {size} bytes, but only "
                f"{len(chunk) - offset} are left",
            )
        elements.append(bytes(chunk[offset : offset + size]))
        offset += size
    if len(elements) != count or offset != len(chunk):
        raise bad_input(
            name,
            f"binary data holds {len(elements)} BYTES elements and {len(chunk) - offset} "
            f"bytes more, but shape [{count}] needs exactly {count} elements",
        )
    return elements


def encode_byte_elements(elements: Sequence[bytes]) -> bytes:
    """BYTES elements in the binary encoding (the inverse of ``byte_elements``)."""
    return b"".join(_LENGTH.pack(len(e)) + bytes(e) for e in elements)


def tensor_bytes(values: np.ndarray, datatype: str) -> bytes:
    """A numeric output as the extension sends it: little-endian, row-major."""
    return np.ascontiguousarray(values, dtype=WIRE_TYPES[datatype]).tobytes()
