"""Every HTTP status code Tandem's servers answer with, chosen here and nowhere else.

The request path raises a ``tandem.errors.Rejected`` subclass saying why a request is
refused; the edge (``tandem.serve.service``, the gateway, the plain process) turns it into
a response with ``status_of``. Pure, no Ray.
"""

from __future__ import annotations

from tandem.errors import (
    MalformedRequest,
    ModelFailed,
    NotServed,
    Rejected,
    TooLarge,
    Unauthenticated,
    UnusableOutputs,
)

OK = 200
UNAVAILABLE = 503
"""Serve's answer (with Retry-After) when a deployment's queue is full, and the gateway's
``/v2/health/ready`` while some model app is not running."""
SERVER_ERROR = 500
"""The first status that is the server's fault rather than the client's."""

REJECTIONS: dict[type[Rejected], int] = {
    MalformedRequest: 400,
    Unauthenticated: 401,
    NotServed: 404,
    TooLarge: 413,
    UnusableOutputs: 422,
    ModelFailed: SERVER_ERROR,
}
"""The status of each reason to refuse a request."""


def status_of(error: Rejected) -> int:
    """The HTTP status of a refused request, from the error's type (or the nearest base
    class of it that ``REJECTIONS`` names)."""
    for kind in type(error).__mro__:
        if kind in REJECTIONS:
            return REJECTIONS[kind]
    raise AssertionError(f"{type(error).__name__} has no HTTP status in REJECTIONS")


def is_server_error(status: int) -> bool:
    """A 5xx: the server's fault (4xx are the client's)."""
    return status >= SERVER_ERROR
