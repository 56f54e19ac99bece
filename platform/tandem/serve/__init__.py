"""Serving: Ray Serve apps of registry versions over the Open Inference Protocol (v2).

``protocol`` and ``binary`` (request/response rules, the binary tensor extension),
``routing`` (versions, aliases, canary, shadow), ``service`` (the request path),
``statuses`` (the one place HTTP status codes are chosen, from the type of each refusal)
and ``evidence`` (what each version answered, how a shadow compares) are plain Python over
``tandem.models.ModelRunner`` (one version's inference); ``app`` is the Serve deployment,
``evidence_book`` the actor that gathers the replicas' evidence, and ``control`` the only
module that changes what Serve runs.

Only ``evidence`` loads eagerly here: every replica imports this face before ``app``, and
the rest (torch through the registry, Ray Serve through ``control``) is bound on first use.
"""

from typing import TYPE_CHECKING

from tandem._lazy import lazy_exports
from tandem.serve.evidence import RolloutEvidence

if TYPE_CHECKING:
    from tandem.serve.control import (
        Deployed,
        deploy,
        deployments,
        endpoint,
        promote,
        rollback,
        rollout_evidence,
        set_traffic,
        undeploy,
    )
    from tandem.serve.promotion import gate, lower_is_better
    from tandem.serve.routing import CanaryTarget, ShadowTarget
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "tandem.serve.control": (
                "Deployed",
                "deploy",
                "deployments",
                "endpoint",
                "promote",
                "rollback",
                "rollout_evidence",
                "set_traffic",
                "undeploy",
            ),
            "tandem.serve.promotion": ("gate", "lower_is_better"),
            "tandem.serve.routing": ("CanaryTarget", "ShadowTarget"),
        },
    )

__all__ = [
    "CanaryTarget",
    "Deployed",
    "RolloutEvidence",
    "ShadowTarget",
    "deploy",
    "deployments",
    "endpoint",
    "gate",
    "lower_is_better",
    "promote",
    "rollback",
    "rollout_evidence",
    "set_traffic",
    "undeploy",
]
