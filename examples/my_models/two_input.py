"""A two-input classifier: a small CNN over an image beside an MLP over tabular features.

Tandem calls ``image_and_stats(out_features=C, inputs={...}, **model.kwargs)``; ``inputs``
maps each input's name, in ``forward`` order, to ``{"kind", "shape", "dtype"}``. The
image arrives as float32 ``[N, C, H, W]`` and the tabular input as float32 ``[N, F]``,
both standardised with training-split statistics.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class ImageAndStats(nn.Module):
    def __init__(
        self, channels: int, features: int, out_features: int, hidden: int, image_first: bool
    ) -> None:
        super().__init__()
        self.image_first = image_first
        self.image = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),  # keeps a coarse layout: which quadrant holds the ink
            nn.Flatten(),
        )
        self.stats = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(32 * 2 * 2 + hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_features)
        )

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        image, stats = (first, second) if self.image_first else (second, first)
        return self.head(torch.cat([self.image(image), self.stats(stats)], dim=1))


def image_and_stats(
    inputs: dict[str, dict[str, Any]], out_features: int, hidden: int = 32
) -> nn.Module:
    """One image input and one tabular input, in either order."""
    kinds = {name: info["kind"] for name, info in inputs.items()}
    if sorted(kinds.values()) != ["image", "tabular"]:
        raise ValueError(
            f"image_and_stats takes one image input and one tabular input (got {kinds})"
        )
    image = next(info for info in inputs.values() if info["kind"] == "image")
    stats = next(info for info in inputs.values() if info["kind"] == "tabular")
    return ImageAndStats(
        channels=image["shape"][0],
        features=stats["shape"][0],
        out_features=out_features,
        hidden=hidden,
        image_first=next(iter(kinds.values())) == "image",
    )
