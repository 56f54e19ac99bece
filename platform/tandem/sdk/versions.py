"""``Client`` methods for the registry: versions, aliases, evaluations and deliveries.

Listing and reading need only the registry; what changes Serve, scores or delivers
imports Ray Serve and torch in the method, so the CLI's listings start in a second.
"""

from __future__ import annotations

from collections.abc import Callable

from tandem.delivery import DeliveryRecord, deliveries
from tandem.evaluation import Evaluation
from tandem.registry import Manifest
from tandem.sdk.base import ClientBase
from tandem.sdk.types import AliasMove, ModelSummary, SpecSource
from tandem.specs import DeliverySpec, VersionRef


class VersionCalls(ClientBase):
    @property
    def registry_uri(self) -> str:
        """Where the registry lives (``<storage>/registry``, any fsspec URI)."""
        return self._registry().uri

    def models(self) -> list[ModelSummary]:
        """Every registered model with its versions and aliases, by name."""
        registry = self._registry()
        summaries = []
        for name in registry.models():
            versions = registry.versions(name)
            summaries.append(ModelSummary(name, versions[-1], versions, registry.aliases(name)))
        return summaries

    def versions(self, name: str) -> list[Manifest]:
        """Every version of ``name``, oldest first."""
        registry = self._registry()
        registry.resolve(name, "latest")  # NotFoundError naming the known models
        return [registry.manifest(name, v) for v in registry.versions(name)]

    def get(self, name: str, version: VersionRef = "latest") -> Manifest:
        """One version's manifest, by number, alias or ``"latest"``."""
        return self._registry().manifest(name, version)

    def aliases(self, name: str) -> dict[str, int]:
        """Where each alias of ``name`` points (``{"production": 3, ...}``)."""
        return self._registry().aliases(name)

    def promote(
        self,
        name: str,
        version: int,
        alias: str = "production",
        if_better: str | None = None,
        min_gain: float = 0.0,
        say: Callable[[str], None] | None = None,
    ) -> AliasMove:
        """Point ``alias`` at ``version``; a live deployment that serves the alias follows.

        ``if_better``: a metric (``accuracy``, ``loss``, ``rmse``, ``mae``, or training's
        ``val_accuracy`` and the like) on which the version must beat the alias's current
        version by at least ``min_gain``, both scored on the same data: the newest
        ``evaluate`` of the two, else one run first on the version's validation set. A tie
        or a loss raises ``RegistryError`` and the alias stays. ``say``: where the gate
        reports its comparison, a line at a time.
        """
        from tandem.serve import promote as serve_promote

        previous = serve_promote(
            name, version, self.settings, alias, if_better, min_gain=min_gain, say=say
        )
        return AliasMove(name, alias, version, previous)

    def rollback(self, name: str, alias: str = "production") -> AliasMove:
        """Return ``alias`` to the version it named before."""
        from tandem.serve import rollback as serve_rollback

        before, after = serve_rollback(name, self.settings, alias)
        return AliasMove(name, alias, after, before)

    def evaluate(
        self,
        name: str,
        version: VersionRef,
        against: VersionRef | None = "production",
        data: str | None = None,
        label: str | None = None,
    ) -> Evaluation:
        """Score ``version`` and the version ``against`` names (``None``: ``version`` alone)
        on the same data, in the batch pool; the stored ``Evaluation``.

        ``data`` (a Parquet URI) and ``label`` (its label column) default to the version's
        validation set and label from its training spec. A measurement, never a refusal:
        ``promote(if_better=...)`` is what gates on it.
        """
        from tandem.evaluation import evaluate

        return evaluate(self.settings, name, version, against, data, label)

    def deliver(
        self, spec: DeliverySpec | SpecSource, say: Callable[[str], None] = print
    ) -> DeliveryRecord:
        """Train or pick a candidate, evaluate it against the alias's version on the same
        data, shadow it, canary it step by step and promote it; any failed guard rolls
        traffic back. Runs here (as the Ray driver), reporting each step through ``say``;
        returns the stored record (``outcome``: promoted, rolled_back or failed)."""
        from tandem.delivery import deliver

        return deliver(spec, self.settings, say=say)

    def deliveries(self, name: str) -> list[DeliveryRecord]:
        """The deliveries of ``name``, oldest first, with every step's evidence."""
        return deliveries(self._registry(), name)
