"""Prometheus metrics of the request path, exported through Ray's metrics agent."""

from __future__ import annotations

from ray.serve import metrics

# Milliseconds; dense below 50 ms where a tabular model's requests live.
LATENCY_BOUNDARIES_MS = [0.5, 1, 2, 3, 5, 7.5, 10, 15, 25, 50, 100, 250, 500, 1000, 5000]
BATCH_BOUNDARIES = [1.0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
TAGS = ("model", "version")
# Ray annotates tag_keys as Tuple[str] (one key) though it takes any number, hence the
# arg-type ignores below.


class RequestMetrics:
    """Request count by status, e2e latency, queue wait and batch size, per model and version."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._requests = metrics.Counter(
            "tandem_requests",
            "Requests answered, by HTTP status.",
            tag_keys=(*TAGS, "status"),  # type: ignore[arg-type]
        )
        self._latency = metrics.Histogram(
            "tandem_request_latency_ms",
            "End-to-end time in the replica, from request to response.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=TAGS,  # type: ignore[arg-type]
        )
        self._queue_wait = metrics.Histogram(
            "tandem_queue_wait_ms",
            "Time a request waited in the batch queue before its forward pass.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=TAGS,  # type: ignore[arg-type]
        )
        self._batch_size = metrics.Histogram(
            "tandem_batch_size",
            "Requests per forward pass.",
            boundaries=BATCH_BOUNDARIES,
            tag_keys=TAGS,  # type: ignore[arg-type]
        )

    def _tags(self, version: int | None) -> dict[str, str]:
        return {"model": self._model, "version": "" if version is None else str(version)}

    def request(self, version: int | None, status: int, latency_ms: float) -> None:
        tags = self._tags(version)
        self._requests.inc(tags={**tags, "status": str(status)})
        self._latency.observe(latency_ms, tags=tags)

    def batch(self, version: int, size: int, waits_ms: list[float]) -> None:
        tags = self._tags(version)
        self._batch_size.observe(size, tags=tags)
        for wait in waits_ms:
            self._queue_wait.observe(wait, tags=tags)
