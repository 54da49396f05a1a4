"""logsumexp, logsoftmax and the softmax loss at large logits (issue: course compatibility).

Once |z| is large, z − logsumexp(z) cancels every digit (at 1e9 a float32's ulp is 64,
so logsumexp([1e9, 1e9]) = 1e9 + log 2 rounds to 1e9). The ops must use max-shifted
exponentials instead; each case here is compared with a long-double NumPy reference
computed from the very same input values, over magnitudes up to 1e9 in float32 and 1e30
in float64, for values, first gradients and the ``create_graph`` gradient alike.
"""

from __future__ import annotations

import needle as ndl
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

# (dtype, largest power of ten, rtol of values, atol of probabilities)
PRECISIONS = {"float32": (9, 2e-5, 2e-6), "float64": (30, 1e-12, 1e-13)}


def softmax_ref(x: np.ndarray, axis: int) -> np.ndarray:
    x = x.astype(np.longdouble)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def logsoftmax_ref(x: np.ndarray, axis: int) -> np.ndarray:
    x = x.astype(np.longdouble)
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


@st.composite
def large_logits(draw, dtype: str):
    """Rows around a common offset of up to 10**k, with small and not so small spreads."""
    top = PRECISIONS[dtype][0]
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    offset = draw(st.sampled_from([0.0, 1.0])) * draw(st.sampled_from([-1.0, 1.0])) \
        * 10.0 ** draw(st.integers(0, top))
    spread = draw(st.sampled_from([0.0, 1.0, 50.0, 10.0 ** max(top - 3, 0)]))
    d = draw(st.lists(st.floats(-1, 1), min_size=rows * cols, max_size=rows * cols))
    return (offset + spread * np.array(d).reshape(rows, cols)).astype(dtype)


def check_close(got, want, dtype, kind):
    _, rtol, atol = PRECISIONS[dtype]
    if kind == "prob":
        np.testing.assert_allclose(got, want.astype(np.float64), rtol=0, atol=atol * 10)
    else:
        np.testing.assert_allclose(got, want.astype(np.float64), rtol=rtol,
                                   atol=atol * 10)


def test_logsumexp_gradient_of_two_equal_huge_logits_is_a_half_each(device):
    z = ndl.Tensor([[1e9, 1e9]], device=device, dtype="float32")
    ndl.logsumexp(z, axes=(1,)).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), [[0.5, 0.5]])
    np.testing.assert_allclose(ndl.logsoftmax(z).numpy(), [[-np.log(2)] * 2], rtol=1e-6)


@given(data=st.data())
def test_logsumexp_values_and_gradients_at_large_magnitudes(device, data):
    for dtype in PRECISIONS:
        x = data.draw(large_logits(dtype))
        axis = data.draw(st.sampled_from([0, 1]))
        z = ndl.Tensor(x, device=device, dtype=dtype)
        out = ndl.logsumexp(z, axes=(axis,))
        m = x.astype(np.longdouble).max(axis=axis)
        want = np.log(np.exp(x.astype(np.longdouble) - np.expand_dims(m, axis)).sum(axis)) + m
        check_close(out.numpy(), want, dtype, "value")
        g = data.draw(st.lists(st.floats(-2, 2), min_size=out.size, max_size=out.size))
        g = np.array(g, dtype=dtype).reshape(out.shape)
        out.backward(ndl.Tensor(g, device=device, dtype=dtype))
        check_close(z.grad.numpy(), np.expand_dims(g, axis) * softmax_ref(x, axis), dtype, "prob")


@given(data=st.data())
def test_logsoftmax_values_and_gradients_at_large_magnitudes(device, data):
    for dtype in PRECISIONS:
        x = data.draw(large_logits(dtype))
        z = ndl.Tensor(x, device=device, dtype=dtype)
        out = ndl.logsoftmax(z)
        check_close(out.numpy(), logsoftmax_ref(x, 1), dtype, "value")
        g = np.array(data.draw(st.lists(st.floats(-2, 2), min_size=x.size, max_size=x.size)),
                     dtype=dtype).reshape(x.shape)
        out.backward(ndl.Tensor(g, device=device, dtype=dtype))
        p = softmax_ref(x, 1)
        check_close(z.grad.numpy(), g - p * g.sum(1, keepdims=True), dtype, "prob")


@given(data=st.data(), create_graph=st.booleans())
def test_softmax_loss_gradient_at_large_magnitudes(device, data, create_graph):
    for dtype in PRECISIONS:
        x = data.draw(large_logits(dtype))
        n, k = x.shape
        labels = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
        z = ndl.Tensor(x, device=device, dtype=dtype)
        loss = ndl.softmax_cross_entropy(z, ndl.Tensor(labels, device=device, dtype="int64"))
        lsm = logsoftmax_ref(x, 1)
        check_close(loss.numpy(), -lsm[np.arange(n), labels].mean(), dtype, "value")
        loss.backward(create_graph=create_graph)
        want = (softmax_ref(x, 1) - np.eye(k)[labels]) / n
        check_close(z.grad.numpy(), want, dtype, "prob")


def test_second_derivative_of_logsumexp_at_a_huge_offset(device):
    """d²/dz² logsumexp = diag(p) − p pᵀ: the create_graph path keeps the max-shift."""
    z = ndl.Tensor([[1e9, 1e9 + 1.0, 1e9 - 0.5]], device=device, dtype="float64")
    ndl.logsumexp(z, axes=(1,)).sum().backward(create_graph=True)
    g = z.grad
    p = softmax_ref(z.numpy(), 1)[0].astype(np.float64)
    rows = []
    for i in range(3):
        z.grad = None
        g[:, i].sum().backward()
        rows.append(z.grad.numpy()[0])
    np.testing.assert_allclose(np.array(rows), np.diag(p) - np.outer(p, p), atol=1e-9)


@given(data=st.data(), create_graph=st.booleans())
def test_softmax_values_and_gradients_at_large_magnitudes(device, data, create_graph):
    """The fused softmax (attention's): y and y · (g − Σ g·y) against the reference."""
    for dtype in PRECISIONS:
        x = data.draw(large_logits(dtype))
        axis = data.draw(st.sampled_from([0, 1]))
        z = ndl.Tensor(x, device=device, dtype=dtype)
        out = ndl.softmax(z, axis)
        p = softmax_ref(x, axis)
        check_close(out.numpy(), p, dtype, "prob")
        g = np.array(data.draw(st.lists(st.floats(-2, 2), min_size=x.size, max_size=x.size)),
                     dtype=dtype).reshape(x.shape)
        out.backward(ndl.Tensor(g, device=device, dtype=dtype), create_graph=create_graph)
        want = p * (g - (g * p).sum(axis, keepdims=True))
        check_close(z.grad.numpy(), want, dtype, "prob")


def test_second_derivative_of_softmax(device):
    """∂²(w·softmax(z))/∂z² from the create_graph path against central differences of
    the first derivative (a float64 finite-difference check of the recorded gradient)."""
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(1, 4)), rng.normal(size=(1, 4))

    def first(v):
        z = ndl.Tensor(v, device=device, dtype="float64")
        (ndl.softmax(z) * ndl.Tensor(w, device=device, dtype="float64")).sum().backward(
            create_graph=True)
        return z, z.grad

    z, g = first(x)
    rows = []
    for i in range(4):
        z.grad = None
        g[:, i].sum().backward()
        rows.append(z.grad.numpy()[0])
    eps = 1e-6
    numeric = np.array([(first(x + eps * np.eye(4)[j:j + 1])[1].numpy()
                         - first(x - eps * np.eye(4)[j:j + 1])[1].numpy())[0] / (2 * eps)
                        for j in range(4)]).T
    np.testing.assert_allclose(np.array(rows), numeric, atol=1e-7)
