"""The one module of private Ray calls warns, naming each, on a Ray it was not checked on."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import ray

from tandem import ray_private
from tandem.ray_private import (
    CHECKED_AGAINST,
    PRIVATE_APIS,
    RayVersionWarning,
    version_mismatch,
    warn_if_untested,
)


def test_the_checked_major_minor_passes_whatever_the_patch() -> None:
    for installed in (CHECKED_AGAINST, f"{CHECKED_AGAINST}.0", f"{CHECKED_AGAINST}.3rc1"):
        assert version_mismatch(installed) is None, installed
    assert version_mismatch("2.60.1", checked="2.60") is None


@pytest.mark.parametrize("installed", ["2.61.0", "2.6.0", "2.600.0", "3.60.0", "nightly"])
def test_another_major_minor_names_both_versions_and_every_private_api(installed: str) -> None:
    message = version_mismatch(installed, checked="2.60")
    assert message is not None
    assert f"checked against Ray 2.60, but Ray {installed} is installed" in message
    assert all(api in message for api in PRIVATE_APIS)
    assert "ray_private.py" in message


def test_a_mismatch_warns_and_a_match_stays_quiet() -> None:
    with pytest.warns(RayVersionWarning, match="Ray 9.1.0 is installed"):
        warn_if_untested("9.1.0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_untested(f"{CHECKED_AGAINST}.2")


def test_the_installed_ray_is_the_one_checked() -> None:
    """The pinned Ray matches, so importing the module (which checks) did not warn."""
    assert version_mismatch(ray.__version__) is None


PRIVATE_USE = re.compile(r"\bray(\.\w+)*\._[a-z]|from ray[\w.]* import .*\b_[a-z]")
"""A private Ray module or name, dotted or imported (``ray._raylet``, ``_get_global_client``)."""


def test_no_private_ray_api_is_used_outside_its_module() -> None:
    here = Path(__file__).resolve()
    root = here.parents[2]
    allowed = {Path(ray_private.__file__).resolve(), here}
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for folder in ("platform", "tests", "jobs", "benchmarks")
        for path in sorted((root / folder).rglob("*.py"))
        if path.resolve() not in allowed
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_USE.search(line)
    ]
    assert not found, "use tandem.ray_private instead:\n" + "\n".join(found)
