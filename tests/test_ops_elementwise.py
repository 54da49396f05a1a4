"""Element-wise ops: forward against NumPy and backward through gradcheck, over
hypothesis-drawn shapes (broadcasting included) and values, on every usable device."""

from __future__ import annotations

import operator

import needle as ndl
import numpy as np
import pytest
from conftest import t64
from hypothesis import given
from hypothesis import strategies as st
from needle.testing import gradcheck
from needle.testing import strategies as nst


def close(got, want):
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


# name -> (needle function, NumPy reference, value options for a, value options for b)
BINARY = {
    "add": (ndl.add, np.add, {}, {}),
    "multiply": (ndl.multiply, np.multiply, {}, {}),
    "divide": (ndl.divide, np.divide, {}, {"min_magnitude": 0.5}),
    "power": (ndl.power, np.power, {"min_value": 0.5, "max_value": 3.0},
              {"min_value": -2.0, "max_value": 2.0}),
    "sub operator": (operator.sub, np.subtract, {}, {}),  # a composition: add(a, -b)
}


@pytest.mark.parametrize("name", BINARY)
@given(shapes=nst.broadcastable_shapes(max_dims=3, max_side=3), data=st.data())
def test_binary_ops_broadcast_and_sum_gradients_back(device, name, shapes, data):
    fn, ref, a_opts, b_opts = BINARY[name]
    a = data.draw(nst.arrays(shapes[0], **a_opts), label="a")
    b = data.draw(nst.arrays(shapes[1], **b_opts), label="b")
    close(fn(t64(a, device), t64(b, device)), ref(a, b))
    assert gradcheck(fn, t64(a, device), t64(b, device))


scalars = st.floats(-3, 3, allow_nan=False, allow_subnormal=False)
nonzero = st.one_of(st.floats(-3, -0.25), st.floats(0.25, 3))

# name -> (needle function of (tensor, scalar), NumPy reference, scalar strategy, value options)
SCALAR = {
    "add_scalar": (ndl.add_scalar, np.add, scalars, {}),
    "mul_scalar": (ndl.mul_scalar, np.multiply, scalars, {}),
    "divide_scalar": (ndl.divide_scalar, np.divide, nonzero, {}),
    "power_scalar integer": (ndl.power_scalar, np.power, st.integers(-2, 3), {"min_magnitude": 0.25}),
    "power_scalar real": (ndl.power_scalar, np.power, st.floats(-1.5, 2.5),
                          {"min_value": 0.25, "max_value": 4.0}),
    # operators that compose several ops
    "x - c": (operator.sub, np.subtract, scalars, {}),
    "c - x": (lambda x, c: c - x, lambda x, c: c - x, scalars, {}),
    "c / x": (lambda x, c: c / x, lambda x, c: c / x, scalars, {"min_magnitude": 0.5}),
    "c ** x": (lambda x, c: c ** x, lambda x, c: c ** x, st.floats(0.5, 3.0), {}),
}


@pytest.mark.parametrize("name", SCALAR)
@given(shape=nst.shapes(min_dims=0), data=st.data())
def test_scalar_ops(device, name, shape, data):
    fn, ref, scalar_st, opts = SCALAR[name]
    c = data.draw(scalar_st, label="scalar")
    x = data.draw(nst.arrays(shape, **{"min_value": -3, "max_value": 3, **opts}), label="x")
    close(fn(t64(x, device), c), ref(x, c))
    assert gradcheck(lambda a: fn(a, c), t64(x, device))


@pytest.mark.parametrize("fn", [operator.add, operator.mul, operator.truediv, operator.pow,
                                lambda a, b: b + a, lambda a, b: b * a, lambda a, b: b - a])
def test_operators_on_tensors_and_scalars(device, fn):
    """Operators dispatch to the op classes property-tested above; one broadcast case each."""
    a = np.random.default_rng(0).uniform(0.5, 2.0, (2, 3, 4))
    b = np.random.default_rng(1).uniform(0.5, 2.0, (3, 1))
    close(fn(t64(a, device), t64(b, device)), fn(a, b))
    assert gradcheck(fn, t64(a, device), t64(b, device))
    close(fn(t64(a, device), 1.5), fn(a, 1.5))
    assert gradcheck(lambda x: fn(x, 1.5), t64(a, device))


@pytest.mark.parametrize("fn", [ndl.add_scalar, ndl.mul_scalar, ndl.divide_scalar,
                                ndl.power_scalar, operator.sub, operator.truediv])
def test_python_scalars_are_weak_and_keep_float32(device, fn):
    x = ndl.Tensor([1.0, 2.0], device=device)
    assert fn(x, 2.5 if fn is not ndl.power_scalar else 2).dtype == np.float32
    assert fn(x, np.float64(2.0)).dtype == np.float32  # NumPy scalars too: never a silent upcast


# name -> (needle function, NumPy reference, value options)
UNARY = {
    "negate": (ndl.negate, np.negative, {}),
    "neg operator": (operator.neg, np.negative, {}),
    "exp": (ndl.exp, np.exp, {"min_value": -5, "max_value": 5}),
    "log": (ndl.log, np.log, {"min_value": 0.1, "max_value": 10}),
    "sqrt": (ndl.sqrt, np.sqrt, {"min_value": 0.1, "max_value": 10}),
    "relu": (ndl.relu, lambda x: np.maximum(x, 0), {"min_magnitude": 1e-3}),
    "tanh": (ndl.tanh, np.tanh, {"min_value": -4, "max_value": 4}),
    "sigmoid": (ndl.sigmoid, lambda x: 1 / (1 + np.exp(-x)), {"min_value": -6, "max_value": 6}),
}


@pytest.mark.parametrize("name", UNARY)
@given(shape=nst.shapes(min_dims=0, max_dims=3), data=st.data())
def test_unary_ops(device, name, shape, data):
    fn, ref, opts = UNARY[name]
    x = data.draw(nst.arrays(shape, **opts), label="x")
    close(fn(t64(x, device)), ref(x))
    assert gradcheck(fn, t64(x, device))


def test_methods_match_functions(device):
    x = t64(np.linspace(0.1, 2.0, 6).reshape(2, 3), device)
    for method, fn in (("exp", ndl.exp), ("log", ndl.log), ("relu", ndl.relu),
                       ("tanh", ndl.tanh), ("sigmoid", ndl.sigmoid)):
        close(getattr(x, method)(), fn(x).numpy())


def test_sigmoid_and_tanh_saturate_without_overflow(device):
    x = t64(np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0]), device)
    with np.errstate(all="raise"):
        s = ndl.sigmoid(x)
        close(s, np.array([0.0, 1 / (1 + np.exp(30.0)), 0.5, 1 / (1 + np.exp(-30.0)), 1.0]))
        s.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))


def test_relu_gradient_is_the_step_function(device):
    x = t64(np.array([-2.0, -0.5, 0.5, 3.0]), device)
    ndl.relu(x).backward(t64(np.array([1.0, 2.0, 3.0, 4.0]), device))
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 3.0, 4.0])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("size", [1, 7, 64, 1000, (1 << 17) + 3])  # both sides of the CPU cache
def test_relu_is_exact_at_signed_zeros_infinities_and_nan(device, dtype, size):
    specials = np.array([-0.0, 0.0, -np.inf, np.inf, np.nan, -3.0, 2.0, -1e-30], dtype)
    x = np.random.default_rng(size).choice(specials, size)
    for a in (x, x[::2]):  # contiguous and strided
        got = ndl.relu(ndl.Tensor(a, device=device, dtype=dtype)).numpy()
        want = np.where(np.isnan(a), np.nan, np.where(a > 0, a, 0)).astype(dtype)
        np.testing.assert_array_equal(got, want)
        assert not np.signbit(got[~np.isnan(got)]).any(), "relu of a negative or -0.0 is -0.0"


def test_cpu_constant_cache_stays_bounded_and_read_only():
    # relu's zeros and the BLAS sums' rows of ones share one cache; a run through many
    # batch sizes must not grow it, and its arrays must never be written by a caller.
    from needle_backend_cpu.backend import _CONSTANT_BYTES, CPUBackend

    bk = CPUBackend()
    for n in range(1, 400, 3):
        a = np.full((n, 1000), -1.0)
        np.testing.assert_array_equal(bk.relu(a)[0], 0.0)
        np.testing.assert_array_equal(bk.sum(a, (0,)), -n)
        assert bk._constant_bytes == sum(c.nbytes for c in bk._constants.values())
        assert bk._constant_bytes <= _CONSTANT_BYTES
    assert all(not c.flags.writeable for c in bk._constants.values())


@given(shape=nst.shapes(min_dims=0), data=st.data())
def test_astype_converts_forward_and_casts_the_gradient_back(device, shape, data):
    x = data.draw(nst.arrays(shape, np.float32, min_value=-5, max_value=5))
    t = ndl.Tensor(x, device=device)
    y = t.astype("float64")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.numpy(), x.astype(np.float64))
    (y * y).sum().backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_allclose(t.grad.numpy(), 2 * x, rtol=1e-6)
    assert gradcheck(lambda a: ndl.astype(a, "float64") * 3, t64(x, device))
    np.testing.assert_array_equal(ndl.astype(t, "int64").numpy(), x.astype(np.int64))


@pytest.mark.parametrize("op, ref", [(operator.lt, np.less), (operator.le, np.less_equal),
                                     (operator.gt, np.greater), (operator.ge, np.greater_equal),
                                     (lambda a, b: a.eq(b), np.equal)])
def test_comparisons_give_bool_tensors_without_gradient(device, op, ref):
    a = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 2.0]])
    b = np.array([2.0, 2.0, 2.0])
    out = op(t64(a, device), t64(b, device))
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out.numpy(), ref(a, b))
    np.testing.assert_array_equal(op(t64(a, device), 2.0).numpy(), ref(a, 2.0))
