"""Shared test set-up: hypothesis profiles and the devices every test runs on.

``HYPOTHESIS_PROFILE=ci`` (the default) is deterministic and quick; ``dev`` hunts longer.
"""

from __future__ import annotations

import os
from pathlib import Path

import needle as ndl
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def device(needle_device) -> ndl.Device:
    """Every backend in turn: needle.testing's pytest plugin parametrises ``needle_device``
    over the installed backends (an unusable one, or cuda when absent, skips with why)."""
    return needle_device


def data_dir() -> Path:
    """Real data sets, from ``NEEDLE_DATA_DIR`` (default: ../shared/data beside the repo)."""
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return Path(os.environ.get("NEEDLE_DATA_DIR", default)).resolve()
