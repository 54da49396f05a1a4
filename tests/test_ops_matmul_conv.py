"""matmul (2-D, batched, broadcast batch axes) and conv (NHWC input, KKIO kernel)
against NumPy references, with gradients through gradcheck."""

from __future__ import annotations

import needle as ndl
import numpy as np
from conftest import t64
from hypothesis import given
from hypothesis import strategies as st
from needle.testing import gradcheck
from needle.testing import strategies as nst

side = st.integers(1, 4)


@given(batch=nst.broadcastable_shapes(min_dims=0, max_dims=2, max_side=3), m=side, k=side, n=side,
       data=st.data())
def test_matmul_batched_with_broadcast_batch_axes(device, batch, m, k, n, data):
    a = data.draw(nst.arrays(batch[0] + (m, k)), label="a")
    b = data.draw(nst.arrays(batch[1] + (k, n)), label="b")
    np.testing.assert_allclose((t64(a, device) @ t64(b, device)).numpy(), np.matmul(a, b),
                               rtol=1e-10, atol=1e-10)
    assert gradcheck(ndl.matmul, t64(a, device), t64(b, device))


def test_matmul_2d_method_and_float32(device):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 2))
    f32 = {"device": device, "dtype": "float32"}
    out = ndl.Tensor(a, **f32).matmul(ndl.Tensor(b, **f32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-5, atol=1e-6)
    assert gradcheck(ndl.matmul, t64(a, device), t64(b, device))


def conv_ref(x, w, stride, padding):
    """Direct loops over output pixels and channels: the definition, nothing clever."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    n, h, wd, cin = x.shape
    k, _, _, cout = w.shape
    ho, wo = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, ho, wo, cout))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for o in range(cout):
                    patch = x[b, i * stride:i * stride + k, j * stride:j * stride + k, :]
                    out[b, i, j, o] = np.sum(patch * w[:, :, :, o])
    return out


@st.composite
def conv_cases(draw):
    k = draw(st.integers(1, 3))
    padding = draw(st.integers(0, 2))
    stride = draw(st.integers(1, 3))
    low = max(1, k - 2 * padding)  # the padded input must hold one kernel
    h, w = draw(st.integers(low, 5)), draw(st.integers(low, 5))
    n, cin, cout = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    x = draw(nst.arrays((n, h, w, cin)))
    kernel = draw(nst.arrays((k, k, cin, cout)))
    return x, kernel, stride, padding


@given(case=conv_cases())
def test_conv_matches_direct_loops_and_gradcheck(device, case):
    x, w, stride, padding = case
    out = ndl.conv(t64(x, device), t64(w, device), stride=stride, padding=padding)
    np.testing.assert_allclose(out.numpy(), conv_ref(x, w, stride, padding), rtol=1e-10,
                               atol=1e-10)
    assert gradcheck(lambda a, b: ndl.conv(a, b, stride, padding), t64(x, device), t64(w, device))


def test_conv_course_shapes(device):
    # the course's typical case: 3x3 kernel, padding 1 keeps the size, stride 2 halves it
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 8, 8, 3)), rng.standard_normal((3, 3, 3, 4))
    for stride, size in ((1, 8), (2, 4)):
        out = ndl.conv(t64(x, device), t64(w, device), stride=stride, padding=1)
        assert out.shape == (2, size, size, 4)
        np.testing.assert_allclose(out.numpy(), conv_ref(x, w, stride, 1), rtol=1e-10, atol=1e-10)
