"""Serving: Ray Serve apps of registry versions over the Open Inference Protocol (v2).

``protocol`` and ``binary`` (request/response rules, the binary tensor extension),
``routing`` (versions, aliases, canary, shadow), ``service`` (the request path),
``statuses`` (the one place HTTP status codes are chosen, from the type of each refusal)
and ``evidence`` (what each version answered, how a shadow compares) are plain Python over
``tandem.models.ModelRunner`` (one version's inference); ``app`` is the Serve deployment,
``evidence_book`` the actor that gathers the replicas' evidence, and ``control`` the only
module that changes what Serve runs.
"""
