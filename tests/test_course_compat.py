"""Code written for CMU 10-714's needle runs unchanged: the names it imports, the way it
hands ``cached_data`` to NumPy, the keyword arguments it passes, its gradient checker."""

from __future__ import annotations

import importlib

import needle as ndl
import needle.backend_ndarray as nd
import numpy as np
import pytest
from needle import autograd
from needle.device import REGISTRY

device_mod = importlib.import_module("needle.device")


def gradient_check(f, *args, tol=1e-6, backward=False, **kwargs):
    """The course's checker (hw1), as it is written there: it perturbs ``cached_data`` in place."""
    eps = 1e-4
    numerical_grads = [np.zeros(a.shape) for a in args]
    for i in range(len(args)):
        for j in range(args[i].realize_cached_data().size):
            args[i].realize_cached_data().flat[j] += eps
            f1 = float(f(*args, **kwargs).numpy().sum())
            args[i].realize_cached_data().flat[j] -= 2 * eps
            f2 = float(f(*args, **kwargs).numpy().sum())
            args[i].realize_cached_data().flat[j] += eps
            numerical_grads[i].flat[j] = (f1 - f2) / (2 * eps)
    if not backward:
        out = f(*args, **kwargs)
        computed_grads = [x.numpy() for x in
                          out.op.gradient_as_tuple(ndl.Tensor(np.ones(out.shape)), out)]
    else:
        out = f(*args, **kwargs).sum()
        out.backward()
        computed_grads = [a.grad.numpy() for a in args]
    error = sum(np.linalg.norm(computed_grads[i] - numerical_grads[i]) for i in range(len(args)))
    assert error < tol
    return computed_grads


def test_backend_ndarray_names():
    assert ndl.backend_ndarray is nd
    for name in ("array", "NDArray", "cpu", "cuda", "cpu_numpy"):
        assert hasattr(nd, name), name
    a = nd.array([[1, 2], [3, 4]], device=nd.cpu())
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    assert isinstance(a, nd.NDArray)
    b = nd.NDArray(np.arange(3.0), device=nd.cpu_numpy())  # the course's NDArray is float32
    assert isinstance(b, nd.NDArray) and b.dtype == np.float32
    assert nd.cuda() is ndl.cuda()


def test_cached_data_is_a_numpy_array():
    x = ndl.Tensor([[1.0, -2.0], [3.0, 4.0]])
    data = x.realize_cached_data()
    assert isinstance(data, np.ndarray) and isinstance(data, nd.NDArray)
    assert np.shares_memory(data, x.cached_data) and np.shares_memory(data, x._array)
    np.testing.assert_allclose(x.cached_data, [[1, -2], [3, 4]])
    assert data.size == 4 and abs(data).sum() == 10
    assert data.astype(np.float64).dtype == np.float64
    data.flat[1] += 0.5  # course code perturbs tensors in place through .flat
    np.testing.assert_allclose(x.numpy(), [[1.0, -1.5], [3.0, 4.0]])


def test_tensor_counter_exists():
    assert isinstance(autograd.TENSOR_COUNTER, int)
    before = autograd.TENSOR_COUNTER
    x = ndl.Tensor([1.0])
    assert autograd.TENSOR_COUNTER == before + 1
    del x


def test_cuda_device_without_a_usable_backend():
    cuda = ndl.cuda()
    if cuda.enabled():
        pytest.skip("a CUDA backend is usable here")
    with pytest.raises(ndl.DeviceError, match="cuda") as info:
        ndl.Tensor([1.0], device=cuda)
    assert "not usable" in str(info.value) or "pip install" in str(info.value)


def test_cuda_not_installed_says_what_to_install(monkeypatch):
    """Without needle-backend-cuda, ndl.cuda() is still a device; using it names the package."""
    monkeypatch.setattr(REGISTRY, "_entry_points",
                        {k: v for k, v in REGISTRY.entry_points().items() if k != "cuda"})
    monkeypatch.setattr(REGISTRY, "_backends",
                        {k: v for k, v in REGISTRY._backends.items() if k != "cuda"})
    monkeypatch.setattr(device_mod, "_DEVICES",
                        {k: v for k, v in device_mod._DEVICES.items() if k != "cuda"})
    cuda = ndl.cuda()
    assert isinstance(cuda, ndl.Device) and not cuda.enabled()
    with pytest.raises(ndl.DeviceError, match=r"pip install needle-backend-cuda\[cuda12\]"):
        ndl.Tensor([1.0], device=cuda)
    assert "cuda" not in [r.name for r in ndl.backends()]


def _f64(*shape, offset=0.0):
    return ndl.Tensor(offset + np.random.randn(*shape), dtype="float64")


@pytest.mark.parametrize("f, shapes, kwargs", [
    (ndl.divide, [(5, 4), (5, 4, "denominator")], {}),
    (ndl.divide_scalar, [(5, 4)], {"scalar": np.random.randn(1)[0]}),
    (ndl.matmul, [(5, 4), (4, 5)], {}),
    (ndl.matmul, [(2, 5, 4), (2, 4, 5)], {}),
    (ndl.summation, [(5, 4)], {"axes": (1,)}),
    (ndl.summation, [(5, 4)], {"axes": None}),
    (ndl.broadcast_to, [(3, 1)], {"shape": (3, 3)}),
    (ndl.reshape, [(5, 4)], {"shape": (4, 5)}),
    (ndl.negate, [(5, 4)], {}),
    (ndl.transpose, [(3, 5, 4)], {"axes": (1, 2)}),
    (ndl.power_scalar, [(5, 4)], {"scalar": 3}),
    (ndl.logsumexp, [(1, 2, 3)], {"axes": (0, 2)}),
    (ndl.stack, [(3, 4)], {"axis": 1}),
], ids=lambda v: getattr(v, "__name__", None))
def test_course_gradient_check_backward_path_on_float64(f, shapes, kwargs):
    np.random.seed(0)
    # the course keeps denominators away from zero: 5 + randn
    args = [_f64(*s[:2], offset=5.0) if s[-1] == "denominator" else _f64(*s) for s in shapes]
    if f is ndl.stack:  # the course stacks a list of tensors
        gradient_check(lambda *xs, axis: ndl.stack(xs, axis=axis), *args, _f64(3, 4),
                       backward=True, **kwargs)
    else:
        gradient_check(f, *args, backward=True, **kwargs)


def test_course_hw1_gradient_check_with_default_dtype():
    """The course's hw1 Tensor keeps NumPy's float64, so its checker (tol 1e-6) holds."""
    np.random.seed(0)
    a, b = ndl.Tensor(np.random.randn(5, 4)), ndl.Tensor(5 + np.random.randn(5, 4))
    assert a.dtype == np.float64
    grads = gradient_check(ndl.divide, a, b)
    assert all(g.dtype == np.float64 for g in grads)


def test_course_hw1_gradient_check_op_path_on_float64():
    """``gradient_as_tuple`` with the checker's ``Tensor(np.ones(...))``: float64 meets float64."""
    np.random.seed(0)
    gradient_check(ndl.divide, _f64(5, 4), _f64(5, 4, offset=5.0))
    gradient_check(ndl.matmul, _f64(5, 4), _f64(4, 5))


def test_course_float64_data_through_float32_layers():
    """Course code feeds float64 arrays into float32 layers: the op promotes (NumPy's rule),
    and each parameter still gets a gradient of its own dtype."""
    np.random.seed(0)
    layer = ndl.nn.Linear(4, 3)
    x = ndl.Tensor(np.random.randn(5, 4))
    out = layer(x)
    assert out.dtype == np.float64
    out.sum().backward()
    assert layer.weight.grad.dtype == np.float32 and layer.bias.grad.dtype == np.float32
    np.testing.assert_allclose(layer.weight.grad.numpy(),
                               x.numpy().T @ np.ones((5, 3)), rtol=1e-5)


def test_course_keyword_arguments():
    x = ndl.Tensor(np.arange(8.0).reshape(2, 4))
    assert ndl.split(ndl.stack([x, x], axis=0), axis=0)[1].shape == (2, 4)
    assert ndl.flip(x, axes=(0,)).shape == (2, 4)
    assert ndl.dilate(x, dilation=1, axes=(1,)).shape == (2, 8)
    assert ndl.undilate(ndl.dilate(x, dilation=1, axes=(1,)), dilation=1, axes=(1,)).shape == (2, 4)
    assert ndl.pad(x, axes=((1, 1), (0, 0))).shape == (4, 4)
    img = ndl.Tensor(np.ones((1, 4, 4, 2)))
    assert ndl.conv(img, ndl.Tensor(np.ones((3, 3, 2, 5))), stride=1, padding=1).shape == (1, 4, 4, 5)
    assert ndl.add_scalar(x, scalar=1).shape == ndl.mul_scalar(x, scalar=2).shape
    assert ndl.logsoftmax(x).shape == (2, 4)
    assert ndl.ops.Summation(axes=(1,))(x).shape == (2,)  # op classes are callable as in the course
    assert ndl.ops.EWiseAdd()(x, x).shape == (2, 4)
