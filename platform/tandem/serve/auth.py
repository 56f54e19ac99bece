"""Bearer-token auth for every endpoint but ``/v2/health/live``. Pure, no Ray.

The token is read once where the replica runs (env var or file on the serve
node) and is never logged or echoed back.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from tandem.errors import Unauthenticated
from tandem.specs import AuthSpec

SCHEME = "bearer "


def load_token(spec: AuthSpec) -> bytes:
    if spec.token_env is not None:
        value = os.environ.get(spec.token_env, "")
        source = f"environment variable {spec.token_env}"
    else:
        assert spec.token_file is not None
        path = Path(spec.token_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"auth.token_file {path} does not exist on this serve node")
        value = path.read_text()
        source = f"auth.token_file {path}"
    token = value.strip()
    if not token:
        raise ValueError(f"the bearer token in {source} is empty; put the token there")
    return token.encode()


class BearerAuth:
    """Checks ``Authorization: Bearer <token>`` in constant time; ``None`` token = open."""

    def __init__(self, token: bytes | None) -> None:
        self._token = token

    def check(self, header: str | None) -> None:
        if self._token is None:
            return
        if header is None or not header[: len(SCHEME)].lower() == SCHEME:
            raise Unauthenticated("missing 'Authorization: Bearer <token>' header")
        offered = header[len(SCHEME) :].strip().encode()
        if not hmac.compare_digest(offered, self._token):
            raise Unauthenticated("invalid bearer token")
