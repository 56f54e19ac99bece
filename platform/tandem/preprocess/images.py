"""Encoded images (PNG, JPEG, ...) ↔ ``[C, H, W]`` arrays, with Pillow."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

MODES = {1: "L", 3: "RGB", 4: "RGBA"}
"""Pillow mode for each channel count an image input may declare."""


def decode_image(data: bytes, shape: list[int]) -> np.ndarray:
    """``data`` as float32 ``[C, H, W]`` in [0, 1], converted to ``C`` channels and resized to
    ``H × W`` when it has another size; ``ValueError`` saying why it cannot be read."""
    channels, height, width = shape
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert(MODES[channels])
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32)
    except UnidentifiedImageError:
        raise ValueError(
            "not a readable image: not PNG, JPEG or another format Pillow reads"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"not a readable image: truncated or corrupt ({error})") from None
    pixels = pixels.reshape(height, width, channels).transpose(2, 0, 1)
    return np.ascontiguousarray(pixels) / np.float32(255.0)


def encode_png(pixels: np.ndarray) -> bytes:
    """A uint8 ``[C, H, W]`` array (C = 1, 3 or 4) as PNG bytes."""
    channels = pixels.shape[0]
    hwc = np.ascontiguousarray(pixels.transpose(1, 2, 0))
    image = Image.fromarray(hwc[:, :, 0] if channels == 1 else hwc, MODES[channels])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
