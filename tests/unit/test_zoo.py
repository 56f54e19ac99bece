"""The zoo's ``inputs`` factories and the example user package: the contract's shapes and
dtypes, errors a user can act on, and that each one really learns the digits in-process."""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from tandem.models import build_model, image_cnn, sequence_cnn
from tandem.registry import InputSchema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def image(shape: list[int], kind: str = "image") -> dict[str, Any]:
    return {"kind": kind, "shape": shape, "dtype": "float32"}


def sequence(length: int, vocab_size: int) -> dict[str, Any]:
    return {"kind": "sequence", "shape": [length], "dtype": "int64", "vocab_size": vocab_size}


TABULAR = {"kind": "tabular", "shape": [2], "dtype": "float32"}


@pytest.mark.parametrize(
    ("kind", "shape"),
    [("image", [1, 8, 8]), ("image", [3, 32, 32]), ("tensor", [2, 6, 10]), ("image", [1, 2, 2])],
)
def test_image_cnn_gives_one_row_of_logits_per_image(kind: str, shape: list[int]) -> None:
    model = image_cnn(inputs={"x": image(shape, kind)}, out_features=7, channels=[4, 8])
    out = model.eval()(torch.randn(5, *shape))
    assert out.shape == (5, 7) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def pools(shape: list[int]) -> int:
    model = image_cnn(inputs={"x": image(shape)}, out_features=2, channels=[4, 4, 4])
    return sum(isinstance(m, nn.MaxPool2d) for m in model.modules())


def test_image_cnn_pools_while_the_side_is_at_least_four() -> None:
    assert pools([1, 8, 8]) == 2  # 8 → 4 → 2, then no more
    assert pools([1, 32, 32]) == 3
    assert pools([1, 3, 3]) == 0


@pytest.mark.parametrize(
    ("inputs", "channels", "message"),
    [
        ({"a": image([1, 8, 8]), "b": image([1, 8, 8])}, None, r"exactly one .*got 2"),
        ({}, None, r"exactly one .*got 0"),
        ({"stats": TABULAR}, None, r"input 'stats' is tabular of shape \[2\]"),
        ({"pixels": image([64], "tensor")}, None, r"input 'pixels' is tensor of shape \[64\]"),
        ({"x": image([1, 8, 8])}, [], r"model\.kwargs\.channels"),
        ({"x": image([1, 8, 8])}, [8, 0], r"model\.kwargs\.channels.*\[8, 0\]"),
    ],
)
def test_image_cnn_refuses_inputs_it_cannot_take(
    inputs: dict[str, Any], channels: list[int] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        image_cnn(inputs=inputs, out_features=3, channels=channels)


def test_sequence_cnn_takes_int64_ids_and_ignores_padding() -> None:
    model = sequence_cnn(inputs={"tokens": sequence(6, 50)}, out_features=4, embed_dim=8)
    model.eval()
    tokens = torch.tensor([[5, 7, 9, 0, 0, 0], [1, 2, 3, 4, 5, 49], [0, 0, 0, 0, 0, 0]])
    out = model(tokens)
    assert out.shape == (3, 4) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # More padding after the same ids leaves the answer unchanged.
    longer = torch.cat([tokens, torch.zeros(3, 10, dtype=torch.int64)], dim=1)
    torch.testing.assert_close(model(longer), out)


def test_sequence_cnn_row_of_only_padding_is_finite_in_training_too() -> None:
    model = sequence_cnn(inputs={"tokens": sequence(5, 20)}, out_features=3, channels=[8, 8])
    out = model.train()(torch.tensor([[0, 0, 0, 0, 0], [3, 4, 0, 0, 0]]))
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    ("inputs", "kwargs", "message"),
    [
        ({"a": sequence(4, 9), "b": sequence(4, 9)}, {}, r"exactly one sequence input.*got 2"),
        ({"x": image([1, 8, 8])}, {}, r"input 'x' is image of shape \[1, 8, 8\]"),
        ({"t": {"kind": "sequence", "shape": [4], "dtype": "int64"}}, {}, r"vocab_size"),
        ({"t": sequence(4, 9)}, {"embed_dim": 0}, r"model\.kwargs\.embed_dim must be ≥ 1"),
        ({"t": sequence(4, 9)}, {"channels": []}, r"model\.kwargs\.channels"),
    ],
)
def test_sequence_cnn_refuses_inputs_it_cannot_take(
    inputs: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sequence_cnn(inputs=inputs, out_features=3, **kwargs)


def schema(name: str, kind: str, shape: list[int], **extra: Any) -> InputSchema:
    dtype = "int64" if kind == "sequence" else "float32"
    return InputSchema(
        name=name, kind=kind, columns=[name], shape=shape, dtype=dtype, example=[], **extra
    )


@pytest.mark.parametrize(
    ("factory", "inputs", "rows"),
    [
        ("tandem.models:image_cnn", [schema("image", "image", [1, 8, 8])], torch.rand(3, 1, 8, 8)),
        ("tandem.models:image_cnn", [schema("px", "tensor", [3, 4, 4])], torch.rand(3, 3, 4, 4)),
        (
            "tandem.models:sequence_cnn",
            [schema("tokens", "sequence", [64], vocab_size=1025)],
            torch.randint(0, 1025, (3, 64)),
        ),
    ],
)
def test_zoo_factories_keep_the_model_contract(
    factory: str, inputs: list[InputSchema], rows: torch.Tensor
) -> None:
    model = build_model(factory, {"channels": [8]}, inputs, out_features=10)
    assert model.eval()(rows).shape == (3, 10)


# --- learning: the digits, split as `tandem data digits` splits them --------------------


class Digits:
    def __init__(self) -> None:
        digits = load_digits()
        self.values = digits.data.astype(np.int64)  # [N, 64], 0..16
        self.labels = torch.from_numpy(digits.target.astype(np.int64))
        self.train, self.validation = train_test_split(
            np.arange(len(self.labels)), test_size=0.2, random_state=0, stratify=digits.target
        )

    def images(self) -> torch.Tensor:
        """``[N, 1, 8, 8]`` in [0, 1], standardised with training-split statistics."""
        x = torch.from_numpy(self.values.reshape(-1, 1, 8, 8) / 16.0).float()
        return (x - x[self.train].mean()) / x[self.train].std()

    def tokens(self) -> torch.Tensor:
        """``[N, 64]``: id ``1 + pixel * 16 + (value - 1)`` per inked pixel, zero-padded."""
        out = torch.zeros(len(self.values), 64, dtype=torch.int64)
        for row, pixels in enumerate(self.values):
            where = np.flatnonzero(pixels)
            out[row, : len(where)] = torch.from_numpy(1 + where * 16 + pixels[where] - 1)
        return out

    def stats(self) -> torch.Tensor:
        """Standardised ink totals, as ``digits-two-input.yaml`` reads them."""
        ink = self.values.sum(axis=1) / 16
        top = self.values[:, :32].sum(axis=1) / 16
        x = torch.from_numpy(np.stack([ink, top], axis=1)).float()
        return (x - x[self.train].mean(0)) / x[self.train].std(0)


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train on one intra-op thread: batches of 64 small images or sequences are too small
    to share, and with two threads the sequence model took 42 s instead of 2 s on a loaded
    two-core machine (same accuracy: the runs are seeded and the result is the same)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def validation_accuracy(
    model: nn.Module,
    inputs: list[torch.Tensor],
    digits: Digits,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    batch_size: int = 64,
) -> float:
    """Train as the two-worker specs do (their 2 × 32 rows per step as one batch of 64)."""
    train = torch.from_numpy(digits.train)
    for epoch in range(epochs):
        model.train()
        order = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad()
            logits = model(*(x[rows] for x in inputs))
            nn.functional.cross_entropy(logits, digits.labels[rows]).backward()
            optimizer.step()
    model.eval()
    rows = torch.from_numpy(digits.validation)
    with torch.inference_mode():
        predicted = model(*(x[rows] for x in inputs)).argmax(dim=1)
    return float((predicted == digits.labels[rows]).float().mean())


@pytest.mark.usefixtures("one_thread")
def test_image_cnn_learns_the_digits(digits: Digits) -> None:
    torch.manual_seed(0)
    model = image_cnn(inputs={"image": image([1, 8, 8])}, out_features=10, channels=[16, 32])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)  # digits-image.yaml
    accuracy = validation_accuracy(model, [digits.images()], digits, 5, optimizer)
    assert accuracy >= 0.85


@pytest.mark.usefixtures("one_thread")
def test_sequence_cnn_learns_the_digit_tokens(digits: Digits) -> None:
    torch.manual_seed(0)
    model = sequence_cnn(
        inputs={"tokens": sequence(64, 1025)}, out_features=10, embed_dim=64, channels=[64]
    )
    # digits-sequence.yaml's optimiser (fewer epochs: the threshold here is lower)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    accuracy = validation_accuracy(model, [digits.tokens()], digits, 8, optimizer)
    assert accuracy >= 0.8


# --- the example user package (examples/my_models) --------------------------------------


@pytest.fixture
def two_input(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``my_models.two_input`` from the checkout, forgotten afterwards: one process holds
    one copy of a package, and a later test here may install it from a version's code."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield importlib.import_module("my_models.two_input")
    for name in [m for m in sys.modules if m.split(".")[0] == "my_models"]:
        del sys.modules[name]


def test_example_package_imports_only_torch() -> None:
    roots = set()
    for path in (EXAMPLES / "my_models").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots.add((node.module or "").split(".")[0])
    assert roots <= {"__future__", "typing", "torch"}


@pytest.mark.parametrize("image_first", [True, False])
def test_image_and_stats_takes_its_inputs_in_declared_order(
    two_input: ModuleType, image_first: bool
) -> None:
    declared = {"picture": image([1, 8, 8]), "stats": TABULAR}
    if not image_first:
        declared = dict(reversed(declared.items()))
    model = two_input.image_and_stats(inputs=declared, out_features=10).eval()
    picture, stats = torch.randn(4, 1, 8, 8), torch.randn(4, 2)
    out = model(picture, stats) if image_first else model(stats, picture)
    assert out.shape == (4, 10) and torch.isfinite(out).all()


def test_image_and_stats_refuses_other_inputs(two_input: ModuleType) -> None:
    with pytest.raises(ValueError, match="one image input and one tabular input"):
        two_input.image_and_stats(inputs={"image": image([1, 8, 8])}, out_features=10)


def test_image_and_stats_is_built_through_the_contract(two_input: ModuleType) -> None:
    inputs = [schema("image", "image", [1, 8, 8]), schema("stats", "tabular", [2])]
    model = build_model("my_models.two_input:image_and_stats", {"hidden": 8}, inputs, 10)
    assert model.eval()(torch.rand(2, 1, 8, 8), torch.rand(2, 2)).shape == (2, 10)


@pytest.mark.usefixtures("one_thread")
def test_image_and_stats_learns_the_digits(two_input: ModuleType, digits: Digits) -> None:
    torch.manual_seed(0)
    inputs = {"image": image([1, 8, 8]), "stats": TABULAR}
    model = two_input.image_and_stats(inputs=inputs, out_features=10, hidden=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)  # digits-two-input.yaml
    accuracy = validation_accuracy(model, [digits.images(), digits.stats()], digits, 5, optimizer)
    assert accuracy >= 0.85
