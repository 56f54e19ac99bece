"""Training curves of runs as one self-contained HTML file: inline SVG, no script, no library.

One chart per figure (training loss, validation loss, the validation metric, samples/s)
by epoch, one line per run, the same colour for a run in every chart.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from tandem.train.history import RunRecord

CHARTS = (
    ("train_loss", "training loss"),
    ("val_loss", "validation loss"),
    ("val_accuracy", "validation accuracy"),
    ("val_rmse", "validation RMSE"),
    ("samples_per_s", "training throughput (samples/s)"),
)
"""Per-epoch figures drawn, in order; a chart no run has a value for is left out."""
COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
WIDTH, HEIGHT = 520, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 40
"""Margins around the plot area, for tick labels and the title."""
Y_TICKS = 5
MAX_X_TICKS = 10

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
.legend {{ list-style: none; padding: 0; }}
.legend li {{ margin: 2px 0; }}
.swatch {{ display: inline-block; width: 14px; height: 4px; margin-right: 8px;
  vertical-align: middle; }}
svg {{ margin: 0 16px 16px 0; }}
svg text {{ font: 11px system-ui, sans-serif; fill: #444; }}
svg .title {{ font-size: 13px; fill: #222; }}
</style></head>
<body><h1>{title}</h1>
<ul class="legend">{legend}</ul>
{charts}
</body></html>
"""


def write_curves(records: Sequence[RunRecord], path: str | Path) -> Path:
    """Write the runs' curves to ``path`` (an ``.html`` file); returns the path."""
    target = Path(path)
    target.write_text(curves_html(records), encoding="utf-8")
    return target


def curves_html(records: Sequence[RunRecord]) -> str:
    legend = "".join(
        f'<li><span class="swatch" style="background:{_color(i)}"></span>'
        f"{html.escape(r.run_id)} ({html.escape(r.summary.model)}, {r.summary.status}, "
        f"{len(r.epochs)} epochs)</li>"
        for i, r in enumerate(records)
    )
    charts = [_chart(key, title, records) for key, title in CHARTS]
    return PAGE.format(
        title="Tandem training runs",
        legend=legend,
        charts="\n".join(c for c in charts if c),
    )


def _color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def _chart(key: str, title: str, records: Sequence[RunRecord]) -> str:
    """One SVG chart of ``key`` by epoch (epochs counted from 1); empty when no run has it."""
    lines = [
        [(row["epoch"] + 1, row[key]) for row in r.epochs if math.isfinite(row.get(key, math.nan))]
        for r in records
    ]
    points = [p for line in lines for p in line]
    if not points:
        return ""
    x_low, x_high = _span([x for x, _ in points])
    y_low, y_high = _span([y for _, y in points])
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            LEFT + (x - x_low) / (x_high - x_low) * inner_w,
            TOP + (1 - (y - y_low) / (y_high - y_low)) * inner_h,
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}">',
        f'<text class="title" x="{LEFT}" y="18">{html.escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" '
        'fill="none" stroke="#bbb"/>',
    ]
    for i in range(Y_TICKS):
        value = y_low + (y_high - y_low) * i / (Y_TICKS - 1)
        _, y = at(x_low, value)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.4g}</text>'
        )
    step = max(1, math.ceil((x_high - x_low) / MAX_X_TICKS))
    for epoch in range(math.ceil(x_low), math.floor(x_high) + 1, step):
        x, _ = at(epoch, y_low)
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + inner_h + 16}" text-anchor="middle">{epoch}</text>'
        )
    parts.append(
        f'<text x="{LEFT + inner_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">epoch</text>'
    )
    for index, (record, line) in enumerate(zip(records, lines, strict=True)):
        if not line:
            continue
        coords = [at(x, y) for x, y in line]
        color = _color(index)
        drawn = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{drawn}">'
            f"<title>{html.escape(record.run_id)}</title></polyline>"
        )
        # Markers, so a run with a single epoch still shows.
        parts.extend(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in coords
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _span(values: list[float]) -> tuple[float, float]:
    """The axis range for ``values``: their extent, widened when they are all equal."""
    low, high = min(values), max(values)
    if high > low:
        return low, high
    pad = abs(low) * 0.1 or 1.0
    return low - pad, high + pad
