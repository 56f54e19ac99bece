"""Serving: Ray Serve apps of registry versions over the Open Inference Protocol (v2).

``protocol`` and ``binary`` (request/response rules, the binary tensor extension),
``routing`` (versions, aliases, canary), ``service`` (the request path) are plain
Python over ``tandem.models.ModelRunner`` (one version's inference); ``app`` is the
Serve deployment and ``control`` the only module that changes what Serve runs.
"""
