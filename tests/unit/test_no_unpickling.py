"""Nothing Tandem reads from storage is unpickled: weights are safetensors, metadata JSON."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "platform" / "tandem"
UNPICKLING = re.compile(
    r"^\s*(import|from)\s+(pickle|cloudpickle|dill|joblib)\b"
    r"|torch\.load\(|read_pickle\(|allow_pickle\s*=\s*True|ray\.cloudpickle",
    re.M,
)


def test_no_module_can_unpickle_what_it_reads() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 40
    found = [
        f"{p.relative_to(PACKAGE)}: {m.group(0).strip()}"
        for p in sources
        for m in UNPICKLING.finditer(p.read_text())
    ]
    assert found == []
