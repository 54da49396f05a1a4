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


def _device_params() -> list:
    """cpu always; cuda (and any plug-in) joins when usable, else skips with the reason."""
    params = []
    for info in ndl.backends():
        marks = [] if info.usable else [pytest.mark.skip(reason=f"{info.name}: {info.reason}")]
        params.append(pytest.param(info.name, marks=marks, id=info.name))
    if not any(info.name == "cuda" for info in ndl.backends()):
        params.append(pytest.param("cuda", id="cuda", marks=[pytest.mark.skip(
            reason="cuda: needle-backend-cuda is not installed")]))
    return params


DEVICE_PARAMS = _device_params()


@pytest.fixture(params=DEVICE_PARAMS)
def device(request) -> ndl.Device:
    return ndl.device(request.param)


def data_dir() -> Path:
    """Real data sets, from ``NEEDLE_DATA_DIR`` (default: ../shared/data beside the repo)."""
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return Path(os.environ.get("NEEDLE_DATA_DIR", default)).resolve()
