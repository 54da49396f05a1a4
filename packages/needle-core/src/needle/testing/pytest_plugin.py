"""needle's pytest plugin, registered by needle-core (entry-point group ``pytest11``).

With needle-core installed, every pytest run gets:

* a ``needle_device`` fixture: a test that asks for it runs once per backend, ``cpu``,
  ``cuda`` and any installed plug-in; a backend that is installed but not usable here,
  or ``cuda`` when needle-backend-cuda is absent, shows as a skip with the reason::

      def test_double(needle_device):
          x = ndl.Tensor([1.0, 2.0], device=needle_device)
          assert (x * 2).numpy().tolist() == [2.0, 4.0]

* ``--needle-devices cpu,cuda`` (or ``NEEDLE_TEST_DEVICES``) to run only those devices;
* one line at the end of the run saying why tests were skipped, grouped by reason.

Nothing is imported or discovered until a test asks for ``needle_device``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Any

import pytest

_KNOWN = ("cpu", "cuda")  # always listed, so a missing backend is a visible skip


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--needle-devices", default=os.environ.get("NEEDLE_TEST_DEVICES"),
        help="comma-separated devices for the needle_device fixture (default: every "
             "installed backend; env NEEDLE_TEST_DEVICES)")


def device_params(only: str | None = None) -> list[Any]:
    """One ``pytest.param`` per backend: usable ones run, the others skip with the reason."""
    from ..device import backends

    infos = {info.name: info for info in backends()}
    names = [*_KNOWN, *sorted(set(infos) - set(_KNOWN))]
    if only:
        wanted = [n.strip() for n in only.split(",") if n.strip()]
        names = [n for n in names if n in wanted] + [n for n in wanted if n not in names]
    params = []
    for name in names:
        info = infos.get(name)
        if info is None:
            package = "needle-backend-cuda" if name == "cuda" else f"a backend named {name!r}"
            reason: str | None = f"{package} is not installed"
        else:
            reason = info.reason
        marks = [pytest.mark.skip(reason=f"{name}: {reason}")] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "needle_device" in metafunc.fixturenames:
        only = metafunc.config.getoption("--needle-devices")
        metafunc.parametrize("needle_device", device_params(only), indirect=True)


@pytest.fixture
def needle_device(request: pytest.FixtureRequest) -> Any:
    """The device of this run of the test (parametrised over every installed backend)."""
    from ..device import device

    return device(request.param)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return re.sub(r"^Skipped: ", "", reason)


def skip_summary(reasons: list[str], most: int = 4) -> str | None:
    """``"12 skipped: 9 cuda: CuPy is not installed; 3 MNIST files absent"``, or None.

    The ``most`` commonest reasons are named; the rest are counted (``-rs`` lists each).
    """
    if not reasons:
        return None
    counts = sorted(Counter(reasons).items(), key=lambda rn: (-rn[1], rn[0]))
    parts = [f"{n} {reason}" for reason, n in counts[:most]]
    rest = counts[most:]
    if rest:
        parts.append(f"{sum(n for _, n in rest)} for {len(rest)} other reasons (-rs lists them)")
    return f"{len(reasons)} skipped: " + "; ".join(parts)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line after the run naming why tests were skipped (with ``-rs`` for each test)."""
    reasons = [_skip_reason(r) for r in terminalreporter.stats.get("skipped", [])]
    line = skip_summary(reasons)
    if line:
        terminalreporter.write_line(f"needle: {line}")
