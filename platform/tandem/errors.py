"""Every exception Tandem raises on purpose, in one module.

They are plain ``Exception`` subclasses whose constructor arguments are all
stored on ``args``, so they pickle across Ray process boundaries unchanged.
The server refuses a request with a ``Rejected`` subclass, which says why; HTTP status
codes are chosen from that type in one module only, ``tandem.serve.statuses``.
"""

from __future__ import annotations


class TandemError(Exception):
    """Base class of every error Tandem raises for a user to act on."""


class SpecError(TandemError, ValueError):
    """A spec (YAML or object) is invalid. ``problems`` holds one line per field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(source, problems)
        self.source = source
        self.problems = problems

    def __str__(self) -> str:
        lines = "\n".join(f"  {p}" for p in self.problems)
        return f"{self.source} is invalid:\n{lines}"


class ClusterError(TandemError):
    """The Ray cluster cannot be started, reached or stopped."""


class NotFoundError(TandemError, LookupError):
    """A model, version, alias, job or deployment does not exist."""


class RegistryError(TandemError):
    """The registry refused an operation (conflict, bad state)."""


class IntegrityError(RegistryError):
    """Stored weights or metadata do not match their recorded checksum or schema."""


class JobFailedError(TandemError):
    """A training or batch job ended in a failed state."""


class InputError(TandemError, ValueError):
    """Values of one model input cannot be used: an image that does not decode, a token id
    outside the vocabulary, a tensor of the wrong shape. ``input`` names the input."""

    def __init__(self, input: str, message: str) -> None:
        super().__init__(input, message)
        self.input = input
        self.message = message

    def __str__(self) -> str:
        return f"input {self.input!r}: {self.message}"


class Rejected(TandemError):
    """The server refuses one request; the subclass says why, ``message`` what to change.
    ``tandem.serve.statuses`` maps each subclass onto the HTTP status the client gets."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MalformedRequest(Rejected):
    """The request breaks the v2 protocol or the model's signature (a shape, a datatype,
    an undecodable value)."""


class Unauthenticated(Rejected):
    """The bearer token is missing or wrong."""


class NotServed(Rejected):
    """No endpoint, model or served version answers at the requested path."""


class TooLarge(Rejected):
    """The request body exceeds the deployment's limit."""


class UnusableOutputs(Rejected):
    """The request is well-formed, but the model's outputs for it are NaN or Inf."""


class ModelFailed(Rejected):
    """The model raised on the request (the server's fault, logged with its traceback)."""


class RequestError(TandemError):
    """An inference request was rejected (seen by a client); ``status`` is the HTTP status
    the server chose."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"
