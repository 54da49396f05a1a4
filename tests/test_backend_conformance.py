"""``needle.testing.check_backend`` passes every usable backend, covers the whole
contract, and reports (rather than hides) what a faulty backend gets wrong."""

from __future__ import annotations

import importlib

import needle as ndl
import numpy as np
import pytest
from needle.backend import OPTIONAL, REQUIRED, Backend
from needle.device import REGISTRY
from needle.testing import check_backend
from needle.xp_backend import ArrayModuleBackend
from needle_backend_cpu import CPUBackend

device_module = importlib.import_module("needle.device")  # ndl.device is the function


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


def test_the_contract_declares_two_parts_and_nothing_else():
    """Every public method is in the required array core or the optional kernels (and
    availability/device_count); no name in both; every optional one has a default."""
    assert not set(REQUIRED) & set(OPTIONAL)
    assert contract_methods() == set(REQUIRED) | set(OPTIONAL) | {"availability",
                                                                  "device_count"}
    for name in REQUIRED:
        assert "raise NotImplementedError" in _source(getattr(Backend, name)), name
    defaults = {"from_dlpack"}  # the one optional method with no portable default
    for name in set(OPTIONAL) - defaults:
        assert "raise NotImplementedError" not in _source(getattr(Backend, name)), name


def _source(fn) -> str:
    import inspect

    return inspect.getsource(fn)


class _Host(ArrayModuleBackend):
    """A stranger's backend for a NumPy-compatible library: the class plus ``xp``."""

    name = "host"
    xp = np
    array_types = (np.ndarray,)


def test_a_numpy_namespace_backend_is_a_few_lines_and_conforms():
    report = check_backend(_Host())
    assert report.ok and report.methods >= set(REQUIRED) | set(OPTIONAL)
    assert _Host.add is np.add  # bound one call deep: xp is a module on the class


def test_a_numpy_namespace_backend_trains_through_a_device(monkeypatch):
    monkeypatch.setattr(REGISTRY, "_backends", dict(REGISTRY._backends))
    monkeypatch.setattr(device_module, "_DEVICES", dict(device_module._DEVICES))
    REGISTRY.register(_Host())
    dev = ndl.device("host")
    rng = np.random.default_rng(0)
    x = ndl.Tensor(rng.normal(size=(16, 4)), device=dev, dtype="float32")
    y = ndl.Tensor(rng.integers(0, 3, 16), device=dev, dtype="int64")
    model = ndl.nn.Sequential(ndl.nn.Linear(4, 8, device=dev), ndl.nn.ReLU(),
                              ndl.nn.Linear(8, 3, device=dev))
    opt = ndl.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(20):
        loss = ndl.nn.SoftmaxLoss()(model(x), y)
        opt.reset_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.numpy()))
    assert losses[-1] < losses[0] * 0.7
    assert model(x).device == dev
