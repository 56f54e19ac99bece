"""Built-in models. Each factory takes the input/output sizes plus its own kwargs."""

from __future__ import annotations

import math

from torch import Tensor, nn


def mlp(
    in_features: int, out_features: int, hidden: list[int] | None = None, dropout: float = 0.0
) -> nn.Module:
    """A multilayer perceptron: Linear → ReLU (→ Dropout) per hidden layer."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden if hidden is not None else [128, 64]:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class SquareImageCNN(nn.Module):
    """Conv → ReLU → (pool) blocks over a square single-channel image given as flat features."""

    def __init__(self, in_features: int, out_features: int, channels: list[int]) -> None:
        super().__init__()
        side = math.isqrt(in_features)
        if side * side != in_features:
            raise ValueError(
                f"model.kwargs: cnn needs a square image; {in_features} features are not n×n"
            )
        self.side = side
        blocks: list[nn.Module] = []
        width, size = 1, side
        for count in channels:
            blocks += [nn.Conv2d(width, count, kernel_size=3, padding=1), nn.ReLU()]
            if size >= 4:
                blocks.append(nn.MaxPool2d(2))
                size //= 2
            width = count
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(width * size * size, out_features)

    def forward(self, x: Tensor) -> Tensor:
        images = x.view(x.shape[0], 1, self.side, self.side)
        return self.head(self.features(images).flatten(1))


def cnn(in_features: int, out_features: int, channels: list[int] | None = None) -> nn.Module:
    """A small CNN for square single-channel images given as ``n*n`` flat features."""
    return SquareImageCNN(in_features, out_features, channels if channels is not None else [16, 32])
