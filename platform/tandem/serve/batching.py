"""Running a batch that mixes versions: one forward pass per version, results cut back into
per-request pieces. Plain numpy; the replica's batcher and the shadow both use it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from tandem.models import ModelRunner, Outputs


def split_outputs(outputs: Outputs, counts: Sequence[int]) -> list[Outputs]:
    """Cut one batch's outputs back into per-request slices of ``counts`` rows."""
    bounds = np.cumsum([0, *counts])
    return [
        {name: values[start:stop] for name, values in outputs.items()}
        for start, stop in itertools.pairwise(bounds)
    ]


def run_grouped(
    requests: Sequence[tuple[ModelRunner, list[np.ndarray]]],
) -> list[Outputs | Exception]:
    """Run a mixed batch: one forward pass per runner (version) over its requests' arrays,
    joined input by input; results in request order. A version whose pass raises gets the
    exception in its requests' places, so a failing canary fails only its own requests."""
    results: list[Outputs | Exception | None] = [None] * len(requests)
    for runner in {id(r): r for r, _ in requests}.values():
        indices = [i for i, (r, _) in enumerate(requests) if r is runner]
        columns = zip(*(requests[i][1] for i in indices), strict=True)
        try:
            outputs = runner.forward([np.concatenate(arrays) for arrays in columns])
        except Exception as error:
            for index in indices:
                results[index] = error
            continue
        counts = [len(requests[i][1][0]) for i in indices]
        for index, piece in zip(indices, split_outputs(outputs, counts), strict=True):
            results[index] = piece
    return [r for r in results if r is not None]
