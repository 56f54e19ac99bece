"""Synthetic 32×32 RGB images for the image benchmarks, and their fitted input schemas.

Each image is a noisy grey background with one 12×12 square at a random place; the
class (0..3) is its colour (reddish or bluish) × whether it is filled or hollow, so a
CNN with global pooling can learn it (position does not matter). Noisy pixels keep the
PNGs about as large as natural 32×32 photos'.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tandem.preprocess import Moments, encode_png
from tandem.registry import InputSchema

SHAPE = [3, 32, 32]
CLASSES = [0, 1, 2, 3]
SQUARE = 12
COLOURS = np.array([[200, 60, 60], [60, 60, 200]], dtype=np.int16)
"""Square colour by ``label // 2``: reddish, bluish."""


def synthetic_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[count, 3, 32, 32]`` images and their int64 labels (balanced, shuffled)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(CLASSES)).astype(np.int64)
    _, height, width = SHAPE
    images = rng.integers(0, 96, size=(count, *SHAPE), dtype=np.int16)
    tops = rng.integers(0, height - SQUARE + 1, size=count)
    lefts = rng.integers(0, width - SQUARE + 1, size=count)
    for image, label, top, left in zip(images, labels, tops, lefts, strict=True):
        colour = COLOURS[label // 2][:, None, None]
        noise = rng.integers(-40, 41, size=(3, SQUARE, SQUARE), dtype=np.int16)
        patch = image[:, top : top + SQUARE, left : left + SQUARE]
        if label % 2 == 0:
            patch[:] = colour + noise
        else:  # hollow: a 2-pixel frame, background inside
            frame = np.ones((SQUARE, SQUARE), dtype=bool)
            frame[2:-2, 2:-2] = False
            patch[:, frame] = (colour + noise)[:, frame]
    return np.clip(images, 0, 255).astype(np.uint8), labels


def png_column(pixels: np.ndarray) -> list[bytes]:
    return [encode_png(image) for image in pixels]


def write_parquet(path: Path, pixels: np.ndarray, labels: np.ndarray) -> Path:
    """``image`` (PNG bytes), ``pixels`` (``fixed_shape_tensor`` uint8 ``[3, 32, 32]``, the
    same images) and ``label`` (int64); a reader that asks for some columns reads only those."""
    tensor_type = pa.fixed_shape_tensor(pa.uint8(), SHAPE)
    table = pa.table(
        {
            "image": pa.array(png_column(pixels), type=pa.binary()),
            "pixels": pa.ExtensionArray.from_storage(
                tensor_type,
                pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), pixels[0].size),
            ),
            "label": pa.array(labels, type=pa.int64()),
        }
    )
    pq.write_table(table, path, row_group_size=4096)
    return path


def image_schema(name: str, pixels: np.ndarray) -> InputSchema:
    """An ``image`` input over column ``image``, standardised per channel as training fits it
    (decoded to [0, 1] first); the example is the first image as a base64 PNG."""
    mean, std = Moments.of(pixels.astype(np.float32) / 255).mean_std()
    example = base64.b64encode(encode_png(pixels[0])).decode("ascii")
    return InputSchema(
        name=name,
        kind="image",
        columns=["image"],
        shape=SHAPE,
        dtype="float32",
        normalize="fitted",
        mean=mean,
        std=std,
        example=example,
    )


def tensor_schema(name: str, pixels: np.ndarray) -> InputSchema:
    """A ``tensor`` input over column ``pixels`` (uint8 values as sent), standardised per
    channel; the example is the first image's values, row-major."""
    mean, std = Moments.of(pixels.astype(np.float32)).mean_std()
    return InputSchema(
        name=name,
        kind="tensor",
        columns=["pixels"],
        shape=SHAPE,
        dtype="float32",
        normalize="fitted",
        mean=mean,
        std=std,
        example=pixels[0].reshape(-1).astype(float).tolist(),
    )
