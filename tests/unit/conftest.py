"""The unit tier runs without Ray: policies are plain Python, tested without ``ray.init``."""

from __future__ import annotations

from typing import NoReturn

import pytest

RAY_FORBIDDEN = (
    "unit tests must not start Ray (ray.init was called): test the policy as plain Python, "
    "or move the test to tests/integration, which runs on a real local cluster"
)


def _refuse_ray_init(*args: object, **kwargs: object) -> NoReturn:
    raise RuntimeError(RAY_FORBIDDEN)


@pytest.fixture(autouse=True)
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ray.init`` raises for the length of each unit test. Ray's implicit start (the first
    ``.remote()``, ``ray.get`` or ``serve.run``) goes through ``ray.init`` too."""
    # Function-scoped on purpose: one ``pytest`` run also holds the cluster tests, which
    # must get the real ``ray.init`` back. Importing Ray costs ~0.3 s once per session,
    # and ``factories`` has already imported it (through ``tandem.train``).
    import ray

    monkeypatch.setattr(ray, "init", _refuse_ray_init)
