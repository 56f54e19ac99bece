"""The dataset that ships with Tandem: scikit-learn's bundled handwritten digits.

1,797 8×8 images (no download), written as Parquet with columns ``f0``…``f63``
and an integer ``label``, split 80/20 (stratified, seeded) into
``train.parquet`` and ``validation.parquet``.
"""

from __future__ import annotations

import fsspec
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

FEATURES = [f"f{i}" for i in range(64)]


def write_digits(uri: str, seed: int = 0) -> dict[str, int]:
    """Write ``<uri>/train.parquet`` and ``<uri>/validation.parquet``; rows per split."""
    digits = load_digits()
    frame = pd.DataFrame(digits.data.astype("float32"), columns=FEATURES)
    frame["label"] = digits.target.astype("int64")
    train, validation = train_test_split(
        frame, test_size=0.2, random_state=seed, stratify=frame["label"]
    )
    fs, root = fsspec.core.url_to_fs(uri)
    fs.makedirs(root, exist_ok=True)
    counts = {}
    for name, part in (("train", train), ("validation", validation)):
        with fs.open(f"{root.rstrip('/')}/{name}.parquet", "wb") as handle:
            part.reset_index(drop=True).to_parquet(handle, index=False)
        counts[name] = len(part)
    return counts
