"""Prometheus metrics of the request path, exported through Ray's metrics agent.

Names follow Prometheus conventions: base units (seconds) in the name, counters without
``_total`` (the exporter adds it). Ray 2.60 (its default OpenTelemetry exporter, checked
against ``ray/_private/telemetry/open_telemetry_metric_recorder.py``) prefixes every
application metric with ``ray_``, so a node's Prometheus endpoint serves:

- ``ray_tandem_requests_total`` (counter): requests answered, by ``status``;
- ``ray_tandem_request_latency_seconds_bucket`` / ``_sum`` / ``_count``: time in the
  replica from request to response;
- ``ray_tandem_queue_wait_seconds_bucket`` / ``_sum`` / ``_count``: time in the batch
  queue before the forward pass;
- ``ray_tandem_batch_size_bucket`` / ``_sum`` / ``_count``: requests per forward pass;
- ``ray_tandem_shadow_requests_total`` (counter): mirrored requests, by ``shadow_version``
  and ``outcome`` (``agree`` / ``disagree`` for classification, ``compared`` for
  regression, ``error``, ``dropped`` when the shadow queue was full);
- ``ray_tandem_shadow_latency_seconds_bucket`` / ``_sum`` / ``_count``: the shadow passes.

Every series carries ``model`` and ``version`` (the version that answered), plus Serve's
own ``application``, ``deployment`` and ``replica`` tags. With
``RAY_enable_open_telemetry=0`` (the legacy OpenCensus exporter) a counter is also exported
as a deprecated gauge without ``_total`` unless ``RAY_EXPORT_COUNTER_AS_GAUGE=0``.
"""

from __future__ import annotations

from ray.serve import metrics

from tandem.serve.evidence import ShadowResult

# Seconds; dense below 50 ms where a tabular model's requests live.
LATENCY_BOUNDARIES_S = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
]  # fmt: skip
BATCH_BOUNDARIES = [1.0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
TAGS = ("model", "version")
SHADOW_TAGS = (*TAGS, "shadow_version")
# Ray annotates tag_keys as Tuple[str] (one key) though it takes any number, hence the
# arg-type ignores below.


class RequestMetrics:
    """Request count by status, e2e latency, queue wait and batch size, per model and
    version; shadow outcomes and latency per shadow version."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._requests = metrics.Counter(
            "tandem_requests",
            "Requests answered, by HTTP status.",
            tag_keys=(*TAGS, "status"),  # type: ignore[arg-type]
        )
        self._latency = metrics.Histogram(
            "tandem_request_latency_seconds",
            "End-to-end time in the replica, from request to response.",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=TAGS,  # type: ignore[arg-type]
        )
        self._queue_wait = metrics.Histogram(
            "tandem_queue_wait_seconds",
            "Time a request waited in the batch queue before its forward pass.",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=TAGS,  # type: ignore[arg-type]
        )
        self._batch_size = metrics.Histogram(
            "tandem_batch_size",
            "Requests per forward pass.",
            boundaries=BATCH_BOUNDARIES,
            tag_keys=TAGS,  # type: ignore[arg-type]
        )
        self._shadow_requests = metrics.Counter(
            "tandem_shadow_requests",
            "Requests mirrored to a shadow version, by outcome.",
            tag_keys=(*SHADOW_TAGS, "outcome"),  # type: ignore[arg-type]
        )
        self._shadow_latency = metrics.Histogram(
            "tandem_shadow_latency_seconds",
            "Time of the shadow pass (preparation and forward) that re-ran a request.",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=SHADOW_TAGS,  # type: ignore[arg-type]
        )

    def _tags(self, version: int | None) -> dict[str, str]:
        return {"model": self._model, "version": "" if version is None else str(version)}

    def request(self, version: int | None, status: int, latency_s: float) -> None:
        tags = self._tags(version)
        self._requests.inc(tags={**tags, "status": str(status)})
        self._latency.observe(latency_s, tags=tags)

    def batch(self, version: int, size: int, waits_s: list[float]) -> None:
        tags = self._tags(version)
        self._batch_size.observe(size, tags=tags)
        for wait in waits_s:
            self._queue_wait.observe(wait, tags=tags)

    def shadow(self, result: ShadowResult) -> None:
        tags = {**self._tags(result.version), "shadow_version": str(result.shadow_version)}
        self._shadow_requests.inc(tags={**tags, "outcome": result.outcome})
        if result.latency_ms is not None:
            self._shadow_latency.observe(result.latency_ms / 1000, tags=tags)
