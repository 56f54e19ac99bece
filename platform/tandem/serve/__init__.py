"""Serving: Ray Serve apps of registry versions over the Open Inference Protocol (v2).

``protocol`` (request/response rules), ``runner`` (one version's inference),
``routing`` (versions, aliases, canary), ``service`` (the request path) are plain
Python; ``app`` is the Serve deployment and ``control`` the only module that
changes what Serve runs.
"""
