"""``Client``: the whole model life cycle from Python, over the embedded or a remote cluster.

Every ``tandem`` command is one call of a method here plus rendering. Methods that only
read the registry or run storage never start a cluster; the rest start the embedded one
when it is not running yet (or use the remote one ``address`` names). The methods live in
one module per concern (``cluster``, ``training``, ``versions``, ``serving``); ``Client``
is their one class.
"""

from __future__ import annotations

from types import TracebackType

from tandem.sdk.cluster import ClusterCalls
from tandem.sdk.inference import DEFAULT_RETRY, InferenceClient, RetryPolicy
from tandem.sdk.serving import ServingCalls
from tandem.sdk.training import TrainingCalls
from tandem.sdk.versions import VersionCalls
from tandem.settings import Settings
from tandem.specs import VersionRef


class Client(ClusterCalls, TrainingCalls, VersionCalls, ServingCalls):
    """Train, register, promote, deploy and score models on one Tandem cluster.

    ``address``: a remote cluster (its GCS ``host:6379``, or its dashboard
    ``http://host:8265``: either is enough, the other is derived with Ray's default
    port); default ``RAY_ADDRESS``, else the embedded cluster under ``TANDEM_HOME``.
    ``endpoint``: base URL of the HTTP inference endpoint; default the cluster's host
    and Serve's port (``TANDEM_PORT_BASE + 3``, 24003 by default), as ``tandem deploy``
    prints it. ``token``: bearer token for deployments with ``auth``.
    ``retry``: how ``predict`` rides through a replica change (see ``RetryPolicy``);
    ``None`` sends each request once.
    """

    def __init__(
        self,
        address: str | None = None,
        endpoint: str | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = DEFAULT_RETRY,
    ) -> None:
        settings = Settings.from_env()
        self.settings = settings if address is None else settings.at(address)
        self._endpoint = endpoint
        self._token = token
        self._retry = retry
        self._inference: InferenceClient | None = None
        self._single_inputs: dict[tuple[str, VersionRef | None], tuple[str, str]] = {}

    def close(self) -> None:
        """Close the HTTP connections ``predict`` opened (the client stays usable)."""
        if self._inference is not None:
            self._inference.close()
            self._inference = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
