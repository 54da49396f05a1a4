"""Tools to test needle ops, modules and backends: the ones needle's own suite uses.

* ``gradcheck(fn, *inputs)`` compares ``backward`` with central finite differences
  in float64 and, on failure, names the input, the element and both values.
* ``needle.testing.strategies`` (needs ``pip install needle-core[testing]``, i.e.
  hypothesis) draws shapes, broadcastable shape pairs, valid axes, arrays of
  controlled magnitude and tensors on a device.
* ``check_backend(backend)`` runs every method of the backend contract on small
  inputs against NumPy, so a third-party backend can prove itself.
* ``assert_backends_agree(fn, *arrays)`` runs ``fn`` and its gradient on every
  usable backend and compares them with the CPU within float tolerances.
* a pytest plugin (``needle.testing.pytest_plugin``, registered on install) gives
  tests a ``needle_device`` fixture parametrised over every installed backend.

Example: property-test your own op (here, softplus built from needle ops)::

    import needle as ndl
    from hypothesis import given
    from needle.testing import gradcheck
    from needle.testing import strategies as nst

    def softplus(x):
        return ndl.log(ndl.exp(x) + 1)

    @given(nst.arrays(nst.shapes(max_dims=3), min_value=-5, max_value=5))
    def test_softplus_gradient(x):
        assert gradcheck(softplus, x)

and a backend, in your plug-in's test suite::

    from needle.testing import check_backend
    from my_package import MyBackend

    def test_my_backend_follows_the_contract():
        check_backend(MyBackend())   # raises AssertionError listing every mismatch

``strategies`` is imported on first use, so ``import needle.testing`` works
without hypothesis installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from .agreement import assert_backends_agree, usable_devices
from .conformance import ConformanceReport, check_backend
from .gradcheck import gradcheck, numerical_gradient

__all__ = ["ConformanceReport", "assert_backends_agree", "check_backend", "gradcheck",
           "numerical_gradient", "strategies", "usable_devices"]


def __getattr__(name: str) -> Any:
    """Import ``needle.testing.strategies`` (and with it hypothesis) only when asked for."""
    if name == "strategies":
        return importlib.import_module(f"{__name__}.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
