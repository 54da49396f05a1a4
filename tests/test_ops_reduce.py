"""Reductions: summation, max, logsumexp and logsoftmax over hypothesis-drawn axes."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from conftest import t64
from hypothesis import given
from hypothesis import strategies as st
from needle.testing import gradcheck
from needle.testing import strategies as nst

shape_and_axes = nst.shapes(min_dims=1, max_dims=3).flatmap(
    lambda s: st.tuples(st.just(s), nst.axes(s)))



def lse_ref(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


@given(case=shape_and_axes, keepdims=st.booleans(), data=st.data())
def test_summation(device, case, keepdims, data):
    shape, axes = case
    x = data.draw(nst.arrays(shape))
    out = ndl.summation(t64(x, device), axes, keepdims)
    np.testing.assert_allclose(out.numpy(), np.sum(x, axis=axes, keepdims=keepdims), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(t64(x, device).sum(axes, keepdims).numpy(), out.numpy())
    assert gradcheck(lambda a: ndl.summation(a, axes, keepdims), t64(x, device))


@given(case=shape_and_axes, keepdims=st.booleans(), data=st.data())
def test_max_without_ties(device, case, keepdims, data):
    shape, axes = case
    x = data.draw(nst.arrays(shape, distinct=True))  # ties would make max non-differentiable
    out = ndl.max(t64(x, device), axes, keepdims)
    np.testing.assert_array_equal(out.numpy(), np.max(x, axis=axes, keepdims=keepdims))
    assert gradcheck(lambda a: ndl.max(a, axes, keepdims), t64(x, device))


def test_max_splits_the_gradient_between_ties(device):
    x = t64(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]]), device)
    ndl.max(x, 1).backward(t64(np.array([1.0, 10.0]), device))
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, 0.5, 0.5], [10.0, 0.0, 0.0]])


@given(case=shape_and_axes, keepdims=st.booleans(), data=st.data())
def test_logsumexp(device, case, keepdims, data):
    shape, axes = case
    x = data.draw(nst.arrays(shape, min_value=-20, max_value=20))
    out = ndl.logsumexp(t64(x, device), axes, keepdims)
    np.testing.assert_allclose(out.numpy(), lse_ref(x, axes, keepdims), rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda a: ndl.logsumexp(a, axes, keepdims), t64(x, device))


@given(shape=nst.shapes(min_dims=1, max_dims=3), data=st.data())
def test_logsoftmax(device, shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    x = data.draw(nst.arrays(shape, min_value=-20, max_value=20))
    out = ndl.logsoftmax(t64(x, device), axis)
    np.testing.assert_allclose(out.numpy(), x - lse_ref(x, axis, keepdims=True), rtol=1e-10,
                               atol=1e-10)
    assert gradcheck(lambda a: ndl.logsoftmax(a, axis), t64(x, device))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp_is_stable_on_huge_inputs(device, dtype):
    x = ndl.Tensor([[1000.0, 10000.0, 100.0]], device=device, dtype=dtype)
    out = ndl.logsumexp(x, (1,))
    np.testing.assert_allclose(out.numpy(), [10000.0])
    out.backward(ndl.Tensor([1.0], device=device, dtype=dtype))
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, 1.0, 0.0]])

    big = np.random.default_rng(0).standard_normal((4, 5)) * 1e5
    y = ndl.Tensor(big, device=device, dtype=dtype)
    out = ndl.logsumexp(y, (1,))
    ref = lse_ref(big.astype(dtype), 1)
    assert np.all(np.isfinite(out.numpy()))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6)
    out.sum().backward()
    softmax = np.exp(big - lse_ref(big, 1, keepdims=True))
    assert np.all(np.isfinite(y.grad.numpy()))
    np.testing.assert_allclose(y.grad.numpy(), softmax, atol=1e-6)


def test_cpu_logsumexp_of_integers_is_a_float_like_numpys():
    from needle_backend_cpu.backend import CPUBackend

    rows = np.array([[1, 2, 3], [0, 0, 0]])
    np.testing.assert_allclose(CPUBackend().logsumexp(rows, (1,)), lse_ref(rows.astype(float), 1))


def test_logsumexp_gradient_at_scale_1e5_by_gradcheck(device):
    # well-separated huge values: the softmax is (nearly) one-hot, the check is exact
    big = np.array([[1e5, 2e5, -3e5], [4e5, 3.99999e5, 0.0]])
    assert gradcheck(lambda a: ndl.logsumexp(a, (1,)), t64(big, device), eps=1e-3)


def test_logsoftmax_is_stable_on_huge_inputs(device):
    big = np.random.default_rng(1).standard_normal((3, 6)) * 1e5
    x = t64(big, device)
    out = ndl.logsoftmax(x)
    np.testing.assert_allclose(out.numpy(), big - lse_ref(big, 1, keepdims=True), rtol=1e-12)
    out.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
