"""The dataset that ships with Tandem: scikit-learn's bundled handwritten digits.

1,797 8×8 images (no download), split 80/20 (stratified, seeded) into ``train.parquet``
and ``validation.parquet``. Each row holds the same digit in every input kind Tandem reads:

- ``f0``…``f63``: float32 pixel values 0..16, row-major (tabular);
- ``image``: a greyscale 8×8 PNG, pixels scaled to 0..255 (image, ``shape [1, 8, 8]``);
- ``pixels``: a ``fixed_shape_tensor`` of uint8 ``[1, 8, 8]``, the same scaled values
  (tensor);
- ``tokens``: a ``list<int64>`` with one id per non-zero pixel, in row-major order:
  ``1 + pixel_index * 16 + (value - 1)``, so ids are 1..1024 and lengths vary (sequence);
- ``ink`` and ``ink_top_half``: float32 total intensity / 16 of the whole digit and of its
  top four rows (a small tabular input beside the image in the two-input example);
- ``label``: the digit, int64.
"""

from __future__ import annotations

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tandem.preprocess import encode_png

FEATURES = [f"f{i}" for i in range(64)]
SIDE = 8
LEVELS = 16
"""Pixel values of the source data run 0..LEVELS."""


def write_digits(uri: str, seed: int = 0) -> dict[str, int]:
    """Write ``<uri>/train.parquet`` and ``<uri>/validation.parquet``; rows per split."""
    # scikit-learn (and SciPy under it) is imported here, not with the module: every
    # process that imports ``tandem.data`` (train workers, Ray Data tasks, replicas) would
    # otherwise pay about a second for it, and only this function uses it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    values = digits.data.astype(np.int64)  # [N, 64], 0..16
    labels = digits.target.astype(np.int64)
    train, validation = train_test_split(
        np.arange(len(labels)), test_size=0.2, random_state=seed, stratify=labels
    )
    fs, root = fsspec.core.url_to_fs(uri)
    fs.makedirs(root, exist_ok=True)
    counts = {}
    for name, rows in (("train", train), ("validation", validation)):
        with fs.open(f"{root.rstrip('/')}/{name}.parquet", "wb") as handle:
            pq.write_table(_table(values[rows], labels[rows]), handle)
        counts[name] = len(rows)
    return counts


def _table(values: np.ndarray, labels: np.ndarray) -> pa.Table:
    """The columns of the module docstring for pixel values ``[N, 64]`` (0..16) and labels."""
    columns: dict[str, pa.Array] = {
        name: pa.array(values[:, i].astype(np.float32)) for i, name in enumerate(FEATURES)
    }
    columns["label"] = pa.array(labels.astype(np.int64))
    scaled = np.rint(values * (255 / LEVELS)).astype(np.uint8).reshape(-1, 1, SIDE, SIDE)
    columns["image"] = pa.array([encode_png(image) for image in scaled], type=pa.binary())
    columns["pixels"] = pa.FixedShapeTensorArray.from_numpy_ndarray(scaled)
    columns["tokens"] = pa.array([pixel_tokens(row) for row in values], type=pa.list_(pa.int64()))
    columns["ink"] = pa.array(values.sum(axis=1).astype(np.float32) / LEVELS)
    top_half = values[:, : SIDE * SIDE // 2].sum(axis=1)
    columns["ink_top_half"] = pa.array(top_half.astype(np.float32) / LEVELS)
    return pa.table(columns)


def pixel_tokens(pixels: np.ndarray) -> list[int]:
    """Token ids of one digit's 64 pixel values (0..16): one per non-zero pixel."""
    where = np.flatnonzero(pixels)
    return (1 + where * LEVELS + (pixels[where] - 1)).tolist()
