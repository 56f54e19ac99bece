"""Read what a schema cannot tell: images that do not decode, token ids that are negative,
missing values — each named by file and row — and the largest token id of each sequence
input. Runs before any worker starts (in the submitting client and again in the job).

Only image and sequence columns are read; pure pyarrow, numpy and Pillow, no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tandem.data.source import ParquetSource
from tandem.errors import SpecError
from tandem.preprocess import decode_image
from tandem.registry import InputSchema

BATCH_ROWS = 4096
MAX_PROBLEMS = 5
"""A file full of bad rows is reported by its first few."""


@dataclass
class ContentReport:
    problems: list[str] = field(default_factory=list)
    max_ids: dict[str, int] = field(default_factory=dict)
    """Largest token id seen per sequence input (absent when it held no tokens)."""


def scan(
    sources: list[ParquetSource], drafts: list[InputSchema], fields: list[str]
) -> ContentReport:
    """Check every image and sequence value in ``sources``; ``fields[i]`` names ``drafts[i]``
    in messages. Raises ``SpecError`` listing the first problems found."""
    report = ContentReport()
    checked = [
        (d, f) for d, f in zip(drafts, fields, strict=True) if d.kind in ("image", "sequence")
    ]
    if not checked:
        return report
    columns = sorted({d.columns[0] for d, _ in checked})
    for source in sources:
        for path in source.files:
            where = path if "://" not in source.uri else source.fs.unstrip_protocol(path)
            with source.fs.open(path, "rb") as handle:
                _scan_file(pq.ParquetFile(handle), columns, checked, where, report)
            if len(report.problems) >= MAX_PROBLEMS:
                break
    if report.problems:
        raise SpecError("dataset", report.problems[:MAX_PROBLEMS])
    return report


def _scan_file(
    file: pq.ParquetFile,
    columns: list[str],
    checked: list[tuple[InputSchema, str]],
    where: str,
    report: ContentReport,
) -> None:
    offset = 0
    for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        for draft, name in checked:
            values = batch.column(draft.columns[0])
            if draft.kind == "image":
                _check_images(values, draft, name, where, offset, report)
            else:
                _check_tokens(values, draft, name, where, offset, report)
        offset += batch.num_rows


def _check_images(
    values: pa.Array, draft: InputSchema, name: str, where: str, offset: int, report: ContentReport
) -> None:
    for row, data in enumerate(values.to_pylist()):
        if data is None:
            report.problems.append(f"{name}: row {offset + row} of {where} has no image (null)")
            continue
        try:
            decode_image(data, draft.shape)
        except ValueError as error:
            report.problems.append(f"{name}: row {offset + row} of {where}: {error}")
        if len(report.problems) >= MAX_PROBLEMS:
            return


def _check_tokens(
    values: pa.Array, draft: InputSchema, name: str, where: str, offset: int, report: ContentReport
) -> None:
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        report.problems.append(f"{name}: row {offset + row} of {where} has no token list (null)")
        return
    ids = values.flatten().to_numpy(zero_copy_only=False)
    if len(ids) == 0:
        return
    if ids.min() < 0:
        first = int(np.flatnonzero(ids < 0)[0])
        offsets = values.offsets.to_numpy()
        offsets = offsets - offsets[0]
        row = int(np.searchsorted(offsets, first, side="right")) - 1
        report.problems.append(
            f"{name}: row {offset + row} of {where} holds token id {int(ids[first])}; "
            "ids must be ≥ 0 (0 is padding)"
        )
        return
    report.max_ids[draft.name] = max(report.max_ids.get(draft.name, 0), int(ids.max()))
