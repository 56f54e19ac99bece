"""What training fits on its training split, as mergeable per-block parts: statistics of
each normalised input, label classes, one example row. Pure numpy: Ray Data runs
``PartialFit`` per block in ``tandem.data.ingest``, the driver merges the parts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import reduce

import numpy as np

from tandem.preprocess import Moments, Raw, decode_images, example_value, gather
from tandem.registry import InputSchema, TargetSchema


@dataclass
class FitPart:
    """One block's contribution."""

    rows: int
    moments: dict[str, Moments] = field(default_factory=dict)
    labels: set[int] = field(default_factory=set)
    examples: dict[str, list[int] | list[float] | str] = field(default_factory=dict)

    def to_json(self) -> str:
        """Plain JSON, so Ray Data carries the part as a string column (no pickling)."""
        moments = {
            name: [m.count, m.total.tolist(), m.squares.tolist()]
            for name, m in self.moments.items()
        }
        return json.dumps(
            {
                "rows": self.rows,
                "moments": moments,
                "labels": sorted(self.labels),
                "examples": self.examples,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FitPart:
        data = json.loads(text)
        moments = {
            name: Moments(count, np.asarray(total), np.asarray(squares))
            for name, (count, total, squares) in data["moments"].items()
        }
        return cls(data["rows"], moments, set(data["labels"]), data["examples"])

    def merge(self, other: FitPart) -> FitPart:
        moments = dict(self.moments)
        for name, m in other.moments.items():
            moments[name] = moments[name].merge(m) if name in moments else m
        return FitPart(
            self.rows + other.rows,
            moments,
            self.labels | other.labels,
            {**other.examples, **self.examples},  # the first block's example wins
        )


def unnormalised(draft: InputSchema, raw: Raw) -> np.ndarray:
    """The values statistics are taken over: numbers as float, images decoded to [0, 1]."""
    if draft.kind == "image":
        return decode_images(draft, raw)
    return np.asarray(raw, dtype=np.float32).reshape(-1, *draft.shape)


class PartialFit:
    """A Ray Data batch of the training split → a one-row batch holding its ``FitPart``."""

    def __init__(self, drafts: list[InputSchema], label: str, classification: bool) -> None:
        self.drafts, self.label, self.classification = drafts, label, classification

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(batch[self.label])
        part = FitPart(rows)
        for draft in self.drafts:
            raw = gather(draft, batch)
            if rows:
                part.examples[draft.name] = example_value(draft, raw)
            if draft.normalize == "fitted" and rows:
                part.moments[draft.name] = Moments.of(unnormalised(draft, raw))
        if self.classification:
            part.labels = {int(v) for v in np.unique(batch[self.label])}
        return {"part": np.array([part.to_json()])}


def fitted(
    drafts: list[InputSchema],
    target: TargetSchema,
    parts: list[FitPart],
    max_ids: dict[str, int],
) -> tuple[list[InputSchema], TargetSchema, int]:
    """The fitted input schemas, the target (with classes) and the training row count."""
    total = reduce(FitPart.merge, parts)
    inputs = []
    for draft in drafts:
        update: dict[str, object] = {"example": total.examples[draft.name]}
        if draft.name in total.moments:
            mean, std = total.moments[draft.name].mean_std()
            update |= {"mean": mean, "std": std}
        if draft.kind == "sequence":
            update["vocab_size"] = max_ids.get(draft.name, 0) + 1
        inputs.append(draft.model_copy(update=update))
    if target.classes is not None:
        target = target.model_copy(update={"classes": sorted(total.labels)})
    return inputs, target, total.rows


def label_index(classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Label values → class indices; ``ValueError`` for a value the training split lacked."""
    index = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    if not np.array_equal(classes[index], y):
        unknown = sorted(set(np.asarray(y).tolist()) - set(classes.tolist()))
        raise ValueError(f"label values {unknown[:5]} were not in the training split")
    return index.astype(np.int64)
