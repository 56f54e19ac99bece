"""``Client`` methods for the cluster's life cycle and the data that ships with Tandem."""

from __future__ import annotations

from tandem.cluster import ClusterState, ClusterStatus, collect, connect, gcs_address, running_state
from tandem.cluster import stop as stop_embedded
from tandem.cluster import up as start_embedded
from tandem.data import write_digits
from tandem.sdk.base import ClientBase
from tandem.sdk.types import EmbeddedCluster, WrittenData


class ClusterCalls(ClientBase):
    def up(self, pinned: bool = True, work_conserving: bool = False) -> EmbeddedCluster:
        """Start the embedded single-machine cluster (a no-op when it already runs).

        One Ray node per pool, pinned to its cores unless ``pinned=False`` (for
        comparisons only); ``work_conserving``: training may also run on the serve cores,
        in the idle scheduling class. ``ClusterError`` when ``RAY_ADDRESS`` names another
        cluster: a real cluster starts with Ray's ``ray up cluster.yaml``.
        """
        state = start_embedded(self.settings, pinned=pinned, work_conserving=work_conserving)
        return EmbeddedCluster(
            state.gcs_address,
            state.dashboard_url,
            state.cores,
            state.gpus,
            state.borrowed_cores,
        )

    def down(self) -> bool:
        """Stop the embedded cluster under ``TANDEM_HOME`` (only its processes, never
        another Ray cluster); ``False`` when none was running."""
        return stop_embedded(self.settings)

    def status(self) -> ClusterStatus:
        """Nodes, pools, their resources and what runs on them: the embedded cluster (which
        must be running) or the remote one ``address`` names."""
        connect(self.settings, start=False)
        state = ClusterState.read(self.settings) if self.settings.embedded else None
        cores, gpus = (state.cores, state.gpus) if state is not None else (None, None)
        return collect(gcs_address(self.settings, start=False), cores, gpus)

    def env(self) -> dict[str, str]:
        """Environment variables that point Ray's own CLIs (``ray job submit``, ``serve
        deploy``, ``ray status``) at the running embedded cluster, token included."""
        state = running_state(self.settings)
        return {
            "RAY_ADDRESS": state.gcs_address,
            "RAY_API_SERVER_ADDRESS": state.dashboard_url,
            "RAY_DASHBOARD_ADDRESS": state.dashboard_url,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.settings.auth_token_path),
            "TANDEM_HOME": str(self.settings.home),
        }

    def write_digits(self, uri: str = "data/digits") -> WrittenData:
        """Write scikit-learn's handwritten digits as Parquet (``train.parquet`` and
        ``validation.parquet``) under ``uri``, an fsspec URI; a relative path is under
        ``TANDEM_HOME``. Needs no cluster."""
        target = self.settings.resolve_uri(uri)
        counts = write_digits(target)
        return WrittenData(target, counts["train"], counts["validation"])
