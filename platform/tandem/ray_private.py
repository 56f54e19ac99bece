"""Every private Ray API Tandem calls, in this one module, checked against one Ray version.

Ray's public API does not cover these needs, so each is wrapped here and nowhere else:
re-reading the auth mode and token after Ray cached them, the resources each node has
free, what Serve has deployed and on which HTTP options, and ``ray up``'s config checks
(for the tests). They were written against Ray ``CHECKED_AGAINST``; importing this module
warns (once, naming each API) when the installed Ray is another major.minor, since a
private API may change in any release without notice. It does not fail: most still work.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import ray

if TYPE_CHECKING:
    from ray.serve._private.client import ServeControllerClient
    from ray.serve.config import HTTPOptions
    from ray.serve.schema import ServeDeploySchema

CHECKED_AGAINST = "2.60"
"""The Ray major.minor whose private APIs this module was written and tested against."""
PRIVATE_APIS = (
    "ray._raylet.Config.initialize and ray._raylet.AuthenticationTokenLoader.reset_cache "
    "(re-read RAY_AUTH_MODE and the token)",
    "ray._private.state.state.available_resources_per_node (free resources per node)",
    "ray.serve.context._get_global_client and ray.serve._private.client.ServeControllerClient"
    " (get_serve_details, http_config, deploy_apps)",
    "ray.autoscaler._private.util.prepare_config and validate_config (ray up's checks)",
)


class RayVersionWarning(UserWarning):
    """The installed Ray is not the version Tandem's private Ray calls were checked against."""


def version_mismatch(installed: str, checked: str = CHECKED_AGAINST) -> str | None:
    """What to warn about when ``installed`` (a ``ray.__version__``) is not ``checked``'s
    major.minor; ``None`` when it is (any patch release or pre-release of it)."""
    if installed.split(".")[:2] == checked.split(".")[:2]:
        return None
    apis = "".join(f"\n  - {api}" for api in PRIVATE_APIS)
    return (
        f"tandem was checked against Ray {checked}, but Ray {installed} is installed; these "
        f"private Ray APIs it uses may have changed:{apis}\nInstall ray=={checked}.* or check "
        "them in tandem/ray_private.py."
    )


def warn_if_untested(installed: str) -> None:
    message = version_mismatch(installed)
    if message is not None:
        warnings.warn(message, RayVersionWarning, stacklevel=2)


warn_if_untested(ray.__version__)


def reset_auth_cache() -> None:
    """Make this process's Ray re-read ``RAY_AUTH_MODE`` and the token, which it caches
    when imported; the way Ray's own ``_enable_token_auth`` refreshes them."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def available_resources_per_node() -> dict[str, dict[str, float]]:
    """Resources free right now on each node, by node id (``ray.init`` done)."""
    from ray._private.state import state as global_state

    return dict(global_state.available_resources_per_node())


def _serve_client() -> ServeControllerClient:
    # Imported here: Serve is heavy, and most users of this module never touch it.
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert client is not None, "serve.start() runs before Tandem asks Serve what it runs"
    return client


def serve_details() -> dict[str, Any]:
    """Serve's own account of what runs (``applications`` with each deployed config)."""
    return _serve_client().get_serve_details()


def serve_http_options() -> HTTPOptions:
    """The HTTP options the running Serve instance was started with."""
    options: HTTPOptions = _serve_client().http_config
    return options


def deploy_apps(config: ServeDeploySchema) -> None:
    """Hand Serve a whole config (as ``serve deploy`` does); it returns once accepted."""
    _serve_client().deploy_apps(config)


def prepare_cluster_config(config: dict[str, Any]) -> dict[str, Any]:
    """A cluster-launcher config with ``ray up``'s defaults merged in."""
    from ray.autoscaler._private.util import prepare_config

    prepared: dict[str, Any] = prepare_config(config)
    return prepared


def validate_cluster_config(config: dict[str, Any]) -> None:
    """``ray up``'s schema check of a cluster-launcher config; raises when it fails."""
    from ray.autoscaler._private.util import validate_config

    validate_config(config)
