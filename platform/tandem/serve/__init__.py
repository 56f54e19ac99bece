"""Serving: Ray Serve apps of registry versions over the Open Inference Protocol (v2).

``protocol`` and ``binary`` (request/response rules, the binary tensor extension),
``routing`` (versions, aliases, canary, shadow), ``service`` (the request path) and
``evidence`` (what each version answered, how a shadow compares) are plain Python over
``tandem.models.ModelRunner`` (one version's inference); ``app`` is the Serve deployment,
``evidence_book`` the actor that gathers the replicas' evidence, and ``control`` the only
module that changes what Serve runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tandem.serve.control import (
        Deployed,
        deploy,
        deployments,
        endpoint,
        promote,
        rollback,
        undeploy,
    )
    from tandem.serve.promotion import lower_is_better

# ``control`` loads Ray and ``promotion`` torch: the replica-side modules of this package
# must not pay for them, so the face imports each on first use.
_LAZY = {
    **dict.fromkeys(
        ("Deployed", "deploy", "deployments", "endpoint", "promote", "rollback", "undeploy"),
        "tandem.serve.control",
    ),
    "lower_is_better": "tandem.serve.promotion",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tandem.serve' has no attribute {name!r}")


__all__ = [
    "Deployed",
    "deploy",
    "deployments",
    "endpoint",
    "lower_is_better",
    "promote",
    "rollback",
    "undeploy",
]
