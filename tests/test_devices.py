"""Devices, the backend registry and the course-style array factories."""

from __future__ import annotations

import importlib

import needle as ndl
import numpy as np
import pytest
from needle.device import REGISTRY
from needle_backend_cpu import CPUBackend

device_mod = importlib.import_module("needle.device")  # the attribute ndl.device is the function


@pytest.fixture
def extra_backend():
    """Register CPU-backed devices under other names; unregister them afterwards."""
    names = []

    def register(name, availability=None):
        cls = type(f"Backend_{name}", (CPUBackend,), {
            "name": name, "availability": lambda self: availability})
        REGISTRY.register(cls())
        names.append(name)
        return ndl.device(name)

    yield register
    for name in names:
        REGISTRY._backends.pop(name, None)
        device_mod._DEVICES.pop(name, None)


def test_devices_are_named_singletons():
    assert ndl.cpu() is ndl.device("cpu") is ndl.cpu_numpy()
    assert ndl.device(ndl.cpu()) is ndl.cpu()
    assert ndl.cpu() == ndl.device("cpu") and hash(ndl.cpu()) == hash(ndl.device("cpu"))
    assert repr(ndl.cpu()) == "cpu()"
    assert ndl.cpu().enabled()
    assert ndl.default_device() == ndl.cpu()


def test_backends_report_usability_and_reasons():
    rows = ndl.backends()
    names = [r.name for r in rows]
    assert "cpu" in names and names == sorted(names)
    cpu = rows[names.index("cpu")]
    assert cpu.usable and cpu.reason is None and cpu.distribution.startswith("needle-backend-cpu ")
    assert "usable" in str(cpu)
    for row in rows:
        assert row.usable == (row.reason is None)
        assert row.usable == ndl.device(row.name).enabled()
    assert [d.name for d in ndl.all_devices()] == [r.name for r in rows if r.usable]


def test_cuda_device_always_exists():
    cuda = ndl.cuda()
    assert isinstance(cuda, ndl.Device) and cuda.name == "cuda"
    rows = {r.name: r for r in ndl.backends()}
    assert cuda.enabled() == (rows["cuda"].usable if "cuda" in rows else False)


def test_an_unusable_backend_explains_itself(extra_backend):
    dev = extra_backend("gpu9", availability="no GPU found (driver missing)")
    assert not dev.enabled()
    assert dev not in ndl.all_devices()
    row = next(r for r in ndl.backends() if r.name == "gpu9")
    assert not row.usable and row.reason == "no GPU found (driver missing)"
    with pytest.raises(ndl.DeviceError, match="'gpu9' is installed but not usable here: no GPU"):
        ndl.Tensor([1.0], device=dev)


def test_default_device_follows_the_environment(extra_backend, monkeypatch):
    dev = extra_backend("cpu3")
    monkeypatch.setenv("NEEDLE_DEFAULT_DEVICE", "cpu3")
    assert ndl.default_device() is dev
    assert ndl.Tensor([1.0, 2.0]).device is dev


def test_to_moves_between_devices_as_a_new_leaf(extra_backend):
    other = extra_backend("cpu4")
    x = ndl.Tensor([1.0, 2.0], device="cpu")
    assert x.to("cpu") is x
    y = x.to(other)
    assert y.device is other and y.op is None and y.requires_grad
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    z = x.to("cpu", dtype="float64")
    assert z.dtype == np.float64 and z.device == ndl.cpu()


def test_manual_seed_reproduces_numpy_global_draws(device):
    ndl.manual_seed(5)
    a = device.backend.to_numpy(device.rand(3, 2))
    ndl.manual_seed(5)
    b = device.backend.to_numpy(device.rand(3, 2))
    np.testing.assert_array_equal(a, b)
    if device.name == "cpu":  # the course's reference values come from NumPy's global generator
        np.random.seed(5)
        np.testing.assert_array_equal(a, np.random.rand(3, 2).astype(np.float32))


def test_course_style_factories(device):
    to_np = device.backend.to_numpy
    r = to_np(device.rand(2, 3))
    assert r.shape == (2, 3) and r.dtype == np.float32 and r.min() >= 0 and r.max() < 1
    assert to_np(device.randn((4, 5), dtype="float64")).dtype == np.float64
    bern = to_np(device.randb(4000, p=0.25))
    assert set(np.unique(bern)) <= {0.0, 1.0} and abs(bern.mean() - 0.25) < 0.04
    np.testing.assert_array_equal(to_np(device.one_hot(3, [2, 0])), [[0, 0, 1], [1, 0, 0]])
    labels = ndl.Tensor([1, 1], device=device, dtype="int64")
    np.testing.assert_array_equal(to_np(device.one_hot(3, labels)), [[0, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(to_np(device.zeros(2, 2)), np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(to_np(device.ones((2,), dtype="int64")), [1, 1])
    np.testing.assert_array_equal(to_np(device.full((2,), 7.5, "float64")), [7.5, 7.5])
    assert to_np(device.empty((3, 1))).shape == (3, 1)
    perm = to_np(device.backend.permutation(6))
    assert sorted(perm.tolist()) == list(range(6))


def test_tensor_construction_and_dtypes(device):
    assert ndl.Tensor([1, 2], device=device).dtype == np.float32  # the documented default
    assert ndl.Tensor(np.arange(3), device=device, dtype="int64").dtype == np.int64
    x = ndl.Tensor(np.ones(2), device=device, dtype="float64")
    assert ndl.Tensor(x).dtype == np.float64  # a Tensor keeps its dtype
    assert ndl.Tensor(x, dtype="float32").dtype == np.float32
    assert x.ndim == 1 and x.size == 2 and len(x) == 2 and x.device == device
