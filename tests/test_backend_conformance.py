"""``needle.testing.check_backend`` passes every usable backend, covers the whole
contract, and reports (rather than hides) what a faulty backend gets wrong."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle.backend import Backend
from needle.testing import check_backend
from needle_backend_cpu import CPUBackend


def contract_methods() -> set[str]:
    return {name for name in dir(Backend)
            if not name.startswith("_") and callable(getattr(Backend, name))}


def test_every_usable_backend_conforms(device):
    report = check_backend(device.name)
    assert report.ok, str(report)
    assert report.backend == device.name


def test_the_check_exercises_every_contract_method():
    report = check_backend(ndl.cpu())
    missing = contract_methods() - report.methods
    assert not missing, f"check_backend never calls {sorted(missing)}"
    assert len(report.cases) > 100


class _Faulty(CPUBackend):
    """Plausible bugs a new backend might have."""

    name = "faulty"

    def sum(self, a, axis=None, keepdims=False):
        return super().sum(a, axis, False)  # ignores keepdims

    def exp(self, a):
        return np.exp(a.astype(np.float64))  # silently upcasts float32

    def add_at(self, a, index, value):
        a[index] += value  # buffered: repeated indices do not accumulate

    def randb(self, shape, p, dtype):
        return (np.random.rand(*shape) < 1 - p).astype(dtype)  # wrong probability

    def flip(self, a, axis):
        raise RuntimeError("kernel launch failed")


def test_a_faulty_backend_is_reported_method_by_method():
    report = check_backend(_Faulty(), raise_on_failure=False)
    failed = {m.method for m in report.mismatches}
    assert failed == {"sum", "exp", "add_at", "randb", "flip"}
    text = str(report)
    assert "keepdims=True" in text and "shape" in text  # sum's case and what differs
    assert "dtype float64, expected float32" in text
    assert "repeated indices accumulate" in text
    assert "raised RuntimeError: kernel launch failed" in text
    with pytest.raises(AssertionError, match=r"backend faulty: \d+ cases .* mismatches"):
        check_backend(_Faulty())


class _Minimal(Backend):
    """Only conversion: every other method is the contract's NotImplementedError."""

    name = "minimal"

    def array(self, data, dtype):
        return np.array(data, dtype=dtype)

    def to_numpy(self, a):
        return np.asarray(a)


def test_unimplemented_methods_are_listed_not_fatal():
    report = check_backend(_Minimal(), raise_on_failure=False)
    not_implemented = {m.method for m in report.mismatches if m.problem == "not implemented"}
    assert {"add", "matmul", "conv", "rand", "sum", "pad"} <= not_implemented


def test_unusable_or_unconvertible_backends_stop_early():
    class Unusable(CPUBackend):
        name = "unusable"

        def availability(self):
            return "no device found"

    report = check_backend(Unusable(), raise_on_failure=False)
    assert [str(m) for m in report.mismatches] == [
        "availability [here]: backend reports itself unusable: no device found"]

    class NoRoundTrip(CPUBackend):
        name = "lossy"

        def to_numpy(self, a):
            return np.asarray(a, dtype=np.float16)

    report = check_backend(NoRoundTrip(), raise_on_failure=False)
    assert {m.method for m in report.mismatches} <= {"array", "to_numpy"}
    assert report.mismatches
