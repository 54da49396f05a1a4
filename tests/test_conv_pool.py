"""Convolution with rectangular kernels, strides, padding and dilation, and 2-D max/average
pooling: against direct loops, gradchecked in float64 (first and second order), the fast
array backward against the Tensor-op backward, clear errors, and PyTorch where installed."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from conftest import t64
from hypothesis import given
from hypothesis import strategies as st
from needle import nn
from needle.testing import gradcheck
from needle.testing import strategies as nst

F64 = "float64"



# -- references: the definitions, nothing clever -------------------------------------------------


def conv_ref(x, w, stride, padding, dilation):
    """NHWC x (KH, KW, C_in, C_out) cross-correlation by direct loops over output pixels."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    n, h, wd, _ = x.shape
    kh, kw, _, cout = w.shape
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, ho, wo, cout))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, i, j] = np.einsum("nijc,ijco->no", patch, w)
    return out


def pool_ref(x, kernel, stride, padding, reduce, fill, dilation=(1, 1)):
    """NCHW pooling by direct loops; ``fill`` is the padding value."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    ho = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            window = x[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = reduce(window.reshape(x.shape[:2] + (-1,)), axis=2)
    return out


pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@st.composite
def conv_cases(draw):
    kernel, stride = draw(pairs), draw(pairs)
    dilation = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    padding = draw(st.tuples(st.integers(0, 2), st.integers(0, 2)))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    h = draw(st.integers(max(1, reach[0] - 2 * padding[0]), 6))
    w = draw(st.integers(max(1, reach[1] - 2 * padding[1]), 6))
    n, cin, cout = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    x = draw(nst.arrays((n, h, w, cin)))
    kernel_values = draw(nst.arrays((*kernel, cin, cout)))
    return x, kernel_values, stride, padding, dilation


# -- convolution --------------------------------------------------------------------------------


@given(case=conv_cases())
def test_conv_options_match_direct_loops_and_gradcheck(device, case):
    x, w, stride, padding, dilation = case
    out = ndl.conv(t64(x, device), t64(w, device), stride, padding, dilation)
    np.testing.assert_allclose(out.numpy(), conv_ref(x, w, stride, padding, dilation),
                               rtol=1e-10, atol=1e-10)
    assert gradcheck(lambda a, b: ndl.conv(a, b, stride, padding, dilation),
                     t64(x, device), t64(w, device))
    bias = np.linspace(-1, 1, w.shape[3])
    out = ndl.conv(t64(x, device), t64(w, device), stride, padding, dilation,
                   bias=t64(bias, device))
    np.testing.assert_allclose(out.numpy(), conv_ref(x, w, stride, padding, dilation) + bias,
                               rtol=1e-10, atol=1e-10)
    assert gradcheck(lambda a, b, c: ndl.conv(a, b, stride, padding, dilation, bias=c),
                     t64(x, device), t64(w, device), t64(bias, device))


def _conv_input_and_weight_grads(stride, padding, dilation, x_shape, w_shape, device):
    """(x, w) -> a fixed random projection of d(sum conv(x, w)²)/d(x, w), recorded so that
    it can itself be differentiated."""
    rng = np.random.default_rng(3)
    cx, cw = rng.standard_normal(x_shape), rng.standard_normal(w_shape)

    def grads(x, w):
        y = ndl.conv(x, w, stride, padding, dilation)
        (y * y).sum().backward(create_graph=True)
        gx, gw = x.grad, w.grad
        x.grad = w.grad = None
        return (gx * t64(cx, device, False)).sum() + (gw * t64(cw, device, False)).sum()

    return grads


@pytest.mark.parametrize("stride, padding, dilation", [((1, 1), (1, 1), (1, 1)),
                                                       ((2, 1), (0, 2), (1, 2))])
def test_conv_second_order_gradcheck(device, stride, padding, dilation):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 5, 6, 2)), rng.standard_normal((3, 2, 2, 3))
    assert gradcheck(_conv_input_and_weight_grads(stride, padding, dilation, x.shape, w.shape,
                                                  device),
                     t64(x, device), t64(w, device))


@pytest.mark.parametrize("f", [
    lambda x, w: ndl.conv(x, w, (2, 1), (1, 0), (1, 2), bias=(w * w).sum((0, 1, 2))),
    lambda x, w: ndl.conv(x, w, 3, 0),
    lambda x, w: ndl.max_pool2d(x.permute((0, 3, 1, 2)), (2, 3), (1, 2), (1, 1)),
    lambda x, w: ndl.avg_pool2d(x.permute((0, 3, 1, 2)), 3, 2, 1),
], ids=["conv", "conv-disjoint-windows", "max_pool", "avg_pool"])
def test_fast_backward_matches_the_recorded_backward(device, f):
    rng = np.random.default_rng(5)
    x, w = t64(rng.standard_normal((2, 7, 6, 2)), device), t64(rng.standard_normal((2, 3, 2, 3)),
                                                               device)
    up = rng.standard_normal(f(x, w).shape)
    (f(x, w) * t64(up, device, False)).sum().backward()
    fast = [x.grad.numpy(), w.grad.numpy() if w.grad is not None else None]
    x.grad = w.grad = None
    (f(x, w) * t64(up, device)).sum().backward(create_graph=True)  # up: so that pools record
    assert x.grad.op is not None  # really the recorded (Tensor-op) path
    np.testing.assert_allclose(fast[0], x.grad.numpy(), rtol=1e-10, atol=1e-12)
    if fast[1] is not None:
        np.testing.assert_allclose(fast[1], w.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv_keeps_its_columns_only_until_backward(device):
    rng = np.random.default_rng(0)
    x, w = t64(rng.standard_normal((2, 5, 5, 3)), device), t64(rng.standard_normal((3, 3, 3, 4)),
                                                               device)
    y = ndl.conv(x, w, 2, 1)
    assert y.op.cols is not None
    assert repr(y.op) == "Conv(stride=(2, 2), padding=(1, 1), dilation=(1, 1))"  # no arrays
    y.sum().backward()
    assert y.op.cols is None  # freed, as PyTorch frees saved tensors
    first = w.grad.numpy().copy(), x.grad.numpy().copy()
    x.grad = w.grad = None
    y.sum().backward()  # a second backward recomputes the columns
    np.testing.assert_allclose(w.grad.numpy(), first[0], rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), first[1], rtol=1e-12)
    with ndl.no_grad():
        z = ndl.conv(x, w, 2, 1)  # inference: the backend's conv kernel, no columns kept
    np.testing.assert_allclose(z.numpy(), y.numpy(), rtol=1e-12)
    const = ndl.conv(t64(x.numpy(), device, False), t64(w.numpy(), device, False), 2, 1)
    assert const.op is None


@pytest.mark.parametrize("size, stride, padding, dilation", [
    ((1, 1), 1, 1, 1),  # ResNet9's last blocks: a 3x3 kernel on 1x1 images sees one pixel
    ((2, 2), 2, 1, 1),  # ... and on 2x2 images at stride 2, the first row and column of taps
    ((1, 4), (1, 2), (2, 1), (2, 1)),  # some taps only ever read padding, one axis only
    ((1, 3), (2, 1), (1, 0), 1)])
def test_conv_leaves_out_taps_that_see_only_padding(device, size, stride, padding, dilation):
    rng = np.random.default_rng(6)
    x, w, bias = (rng.standard_normal(shape) for shape in ((2, *size, 3), (3, 3, 3, 2), (2,)))
    xt, wt, bt = t64(x, device), t64(w, device), t64(bias, device)
    y = ndl.conv(xt, wt, stride, padding, dilation, bias=bt)
    assert y.op.trim is not None
    pairs = [(v, v) if isinstance(v, int) else v for v in (stride, padding, dilation)]
    np.testing.assert_allclose(y.numpy(), conv_ref(x, w, *pairs) + bias, rtol=1e-10, atol=1e-12)
    with ndl.no_grad():
        np.testing.assert_allclose(ndl.conv(xt, wt, stride, padding, dilation, bias=bt).numpy(),
                                   y.numpy(), rtol=1e-12)
    assert gradcheck(lambda a, b, c: ndl.conv(a, b, stride, padding, dilation, bias=c),
                     xt, wt, bt)
    up = t64(rng.standard_normal(y.shape), device, False)
    (ndl.conv(xt, wt, stride, padding, dilation, bias=bt) * up).sum().backward()
    fast = xt.grad.numpy(), wt.grad.numpy()
    xt.grad = wt.grad = None
    (ndl.conv(xt, wt, stride, padding, dilation, bias=bt) * up).sum().backward(create_graph=True)
    np.testing.assert_allclose(xt.grad.numpy(), fast[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), fast[1], rtol=1e-10, atol=1e-12)


def test_conv_input_gradient_is_skipped_for_inputs_without_grad(device):
    rng = np.random.default_rng(1)
    x = t64(rng.standard_normal((1, 4, 4, 2)), device, requires_grad=False)
    w = t64(rng.standard_normal((3, 3, 2, 2)), device)
    ndl.conv(x, w, 1, 1).sum().backward()
    assert x.grad is None and w.grad.shape == (3, 3, 2, 2)


def test_conv_checks_height_and_width(device):
    x = t64(np.zeros((1, 5, 3, 2)), device)
    with pytest.raises(ndl.NeedleError, match=r"kernel \(3, 5\) is larger than the padded input "
                                              r"\(5, 3\) \(input \(5, 3\), padding \(0, 0\)\)"):
        ndl.conv(x, t64(np.zeros((3, 5, 2, 1)), device), padding=0)  # wider, not taller
    with pytest.raises(ndl.NeedleError, match=r"kernel \(6, 1\) is larger than the padded input "
                                              r"\(5, 3\)"):
        ndl.conv(x, t64(np.zeros((6, 1, 2, 1)), device), padding=0)  # taller, not wider
    with pytest.raises(ndl.NeedleError, match=r"the bias must have shape \(1,\) for a kernel of "
                                              r"shape \(3, 5, 2, 1\), got \(2,\)"):
        ndl.conv(x, t64(np.zeros((3, 5, 2, 1)), device), padding=1, bias=t64(np.zeros(2), device))
    with pytest.raises(ndl.NeedleError, match=r"kernel \(3, 2\) \(spanning \(3, 4\) with "
                                              r"dilation\) is larger than the padded input"):
        ndl.conv(x, t64(np.zeros((3, 2, 2, 1)), device), padding=0, dilation=(1, 3))
    assert ndl.conv(x, t64(np.zeros((3, 5, 2, 1)), device), padding=(0, 1)).shape == (1, 3, 1, 1)
    for bad, message in (({"stride": 0}, "stride must be >= 1"),
                         ({"padding": -1}, "padding must be >= 0"),
                         ({"dilation": (1, 2, 3)}, "dilation must be an int or a pair"),
                         ({"stride": 1.5}, "stride must be an int or a pair")):
        with pytest.raises(ndl.NeedleError, match=message):
            ndl.conv(x, t64(np.zeros((1, 1, 2, 1)), device), **bad)


def test_conv_default_padding_is_the_courses_one(device):
    x, w = t64(np.ones((1, 4, 4, 1)), device), t64(np.ones((3, 3, 1, 1)), device)
    assert ndl.conv(x, w).shape == (1, 4, 4, 1)
    assert ndl.conv(x, w).numpy()[0, 0, 0, 0] == 4.0  # a corner window sees 4 of 9 ones


def test_im2col_and_col2im_are_adjoint(device):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 5, 3))
    cols = ndl.im2col(t64(x, device), (2, 3), (2, 1), (2, 1))
    assert cols.shape == (2 * 2 * 3, 2 * 3 * 3)
    c = rng.standard_normal(cols.shape)
    back = ndl.col2im(t64(c, device), x.shape, (2, 3), (2, 1), (2, 1))
    # <im2col(x), c> == <x, col2im(c)>
    np.testing.assert_allclose((cols.numpy() * c).sum(), (x * back.numpy()).sum(), rtol=1e-10)
    assert gradcheck(lambda a: ndl.im2col(a, (2, 3), (2, 1), (2, 1)), t64(x, device))
    assert gradcheck(lambda a: ndl.col2im(a, x.shape, (2, 3), (2, 1), (2, 1)), t64(c, device))
    with pytest.raises(ndl.NeedleError, match=r"columns of shape \(5, 18\) do not fit image"):
        ndl.col2im(t64(c[:5], device), x.shape, (2, 3), (2, 1), (2, 1))


# -- the layer ----------------------------------------------------------------------------------


def test_conv_layer_options(device):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 9, 7))
    conv = nn.Conv(3, 4, (3, 2), stride=(2, 1), device=device, dtype=F64, padding=(0, 1),
                   dilation=(2, 1))
    assert conv.weight.shape == (3, 2, 3, 4)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == \
        ((3, 2), (2, 1), (0, 1), (2, 1))
    want = conv_ref(x.transpose(0, 2, 3, 1), conv.weight.numpy(), (2, 1), (0, 1), (2, 1))
    want = want.transpose(0, 3, 1, 2) + conv.bias.numpy()[None, :, None, None]
    out = conv(t64(x, device))
    assert out.shape == (2, 4, 3, 8)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)
    assert "kernel_size=(3, 2), stride=(2, 1), padding=(0, 1), dilation=(2, 1)" in repr(conv)
    # the default padding keeps the size at stride 1, dilated or not
    for dilation in (1, 2):
        same = nn.Conv(3, 2, 5, device=device, dtype=F64, dilation=dilation)
        assert same.padding == 2 * dilation and same(t64(x, device)).shape == (2, 2, 9, 7)
    course = nn.Conv(3, 2, 3, 2, False, device, F64)  # the course's positional arguments
    assert (course.kernel_size, course.stride, course.padding, course.bias) == (3, 2, 1, None)
    with pytest.raises(ndl.NeedleError, match="Conv: kernel_size must be >= 1"):
        nn.Conv(3, 2, (3, 0))


# -- pooling ------------------------------------------------------------------------------------


@st.composite
def pool_cases(draw):
    kernel = draw(pairs)
    stride = draw(st.one_of(st.none(), pairs))
    padding = draw(st.tuples(st.integers(0, kernel[0] // 2), st.integers(0, kernel[1] // 2)))
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 6))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 6))
    x = draw(nst.arrays((draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w), distinct=True))
    return x, kernel, stride, padding


@given(case=pool_cases())
def test_max_pool_matches_direct_loops_and_gradcheck(device, case):
    x, kernel, stride, padding = case
    out = ndl.max_pool2d(t64(x, device), kernel, stride, padding)
    want = pool_ref(x, kernel, stride or kernel, padding, np.max, -np.inf)
    np.testing.assert_array_equal(out.numpy(), want)
    assert gradcheck(lambda a: ndl.max_pool2d(a, kernel, stride, padding), t64(x, device))


@given(case=pool_cases())
def test_avg_pool_matches_direct_loops_and_gradcheck(device, case):
    x, kernel, stride, padding = case
    out = nn.AvgPool2d(kernel, stride, padding)(t64(x, device))
    want = pool_ref(x, kernel, stride or kernel, padding, np.mean, 0.0)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda a: ndl.avg_pool2d(a, kernel, stride, padding), t64(x, device))


def test_avg_pool_without_the_padding_in_the_count(device):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 5, 4))
    pool = nn.AvgPool2d((3, 2), stride=(2, 1), padding=1, count_include_pad=False)
    out = pool(t64(x, device))
    sums = pool_ref(x, (3, 2), (2, 1), (1, 1), np.sum, 0.0)
    counts = pool_ref(np.ones_like(x), (3, 2), (2, 1), (1, 1), np.sum, 0.0)
    np.testing.assert_allclose(out.numpy(), sums / counts, rtol=1e-12)
    assert counts.min() < 6  # the corners really divide by fewer pixels
    assert "count_include_pad=False" in repr(pool)
    assert gradcheck(pool, t64(x, device))
    f = lambda a: ndl.avg_pool2d(a * a, 3, 2, 1, count_include_pad=False)  # noqa: E731
    assert gradcheck(_first_derivative(f, x.shape, device), t64(x, device))


def _first_derivative(f, shape, device):
    """x -> a fixed random projection of d(sum f(x))/dx, recorded for differentiation."""
    c = np.random.default_rng(14).standard_normal(shape)

    def grad(x):
        f(x).sum().backward(create_graph=True)
        g, x.grad = x.grad, None
        return (g * t64(c, device, False)).sum()

    return grad


def pytorch_pool_ref(x, kernel, stride, padding, ceil_mode, kind, count_include_pad=True):
    """PyTorch's pooling definition, window by window: output sizes rounded down (or up,
    keeping a last window that starts inside the image or its left padding); an average
    divides by its window clipped to the padded image (or to the image)."""
    sizes = []
    for size, k, s, p in zip(x.shape[2:], kernel, stride, padding):
        o = (size + 2 * p - k + (s - 1 if ceil_mode else 0)) // s + 1
        sizes.append(o - 1 if ceil_mode and (o - 1) * s >= size + p else o)
    out = np.zeros(x.shape[:2] + tuple(sizes))
    (h, w), (kh, kw), (sh, sw), (ph, pw) = x.shape[2:], kernel, stride, padding
    for i in range(sizes[0]):
        for j in range(sizes[1]):
            r0, c0 = i * sh - ph, j * sw - pw
            r1, c1 = min(r0 + kh, h + ph), min(c0 + kw, w + pw)
            window = x[:, :, max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)]
            if kind == "max":
                out[:, :, i, j] = window.max(axis=(2, 3))
            else:
                count = (r1 - r0) * (c1 - c0) if count_include_pad else window[0, 0].size
                out[:, :, i, j] = window.sum(axis=(2, 3)) / count
    return out


@given(case=pool_cases(), count_include_pad=st.booleans())
def test_ceil_mode_pools_match_pytorchs_definition(device, case, count_include_pad):
    x, kernel, stride, padding = case
    stride = stride or kernel
    for ceil_mode in (False, True):
        got = ndl.max_pool2d(t64(x, device), kernel, stride, padding, ceil_mode=ceil_mode)
        want = pytorch_pool_ref(x, kernel, stride, padding, ceil_mode, "max")
        np.testing.assert_array_equal(got.numpy(), want)
        got = ndl.avg_pool2d(t64(x, device), kernel, stride, padding, ceil_mode,
                             count_include_pad)
        want = pytorch_pool_ref(x, kernel, stride, padding, ceil_mode, "avg", count_include_pad)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    assert gradcheck(lambda a: ndl.max_pool2d(a, kernel, stride, padding, ceil_mode=True),
                     t64(x, device))
    assert gradcheck(lambda a: ndl.avg_pool2d(a, kernel, stride, padding, True,
                                              count_include_pad), t64(x, device))


def test_ceil_mode_keeps_the_last_partial_window(device):
    x = t64(np.arange(25.0).reshape(1, 1, 5, 5), device)
    assert nn.MaxPool2d(2)(x).shape == (1, 1, 2, 2)
    y = nn.MaxPool2d(2, ceil_mode=True)(x)
    np.testing.assert_array_equal(y.numpy()[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    z = nn.AvgPool2d(2, ceil_mode=True)(x)
    assert z.numpy()[0, 0, 2, 2] == 24.0  # the corner window covers one pixel
    assert "ceil_mode=True" in repr(nn.AvgPool2d(2, ceil_mode=True))
    assert gradcheck(nn.AvgPool2d(2, 2, 1, ceil_mode=True, count_include_pad=False), x)


def test_dilated_max_pool_and_the_layer(device):
    rng = np.random.default_rng(10)
    x = rng.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8).astype(np.float64)
    pool = nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 3))
    out = pool(t64(x, device))
    want = pool_ref(x, (3, 2), (2, 1), (1, 1), np.max, -np.inf, dilation=(2, 3))
    np.testing.assert_array_equal(out.numpy(), want)
    assert "kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 3), " \
        "ceil_mode=False" in repr(pool)
    assert gradcheck(pool, t64(x, device))


def test_max_pool_ties_send_the_gradient_to_the_first_maximum(device):
    x = t64(np.array([[[[1.0, 3.0, 3.0, 0.0],
                        [3.0, 2.0, 3.0, 3.0]]]]), device)
    y = ndl.max_pool2d(x, 2)
    assert repr(y.op) == ("MaxPool(kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), "
                          "ceil_mode=False)")
    np.testing.assert_array_equal(y.numpy(), [[[[3.0, 3.0]]]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 1.0, 1.0, 0.0],
                                                     [0.0, 0.0, 0.0, 0.0]]]])
    x.grad = None
    z = ndl.max_pool2d(x, (2, 2), stride=1)  # overlapping windows share one maximum
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 2.0, 1.0, 0.0],
                                                     [0.0, 0.0, 0.0, 0.0]]]])


def test_pool_errors_are_clear(device):
    x = t64(np.zeros((1, 2, 4, 3)), device)
    with pytest.raises(ndl.NeedleError, match=r"max_pool2d: kernel \(2, 4\) .* larger than the "
                                              r"padded input \(4, 3\)"):
        ndl.max_pool2d(x, (2, 4))  # wider, not taller
    with pytest.raises(ndl.NeedleError, match=r"avg_pool2d: padding \(2, 2\) must be at most half "
                                              r"of the kernel \(3, 3\)"):
        nn.AvgPool2d(3, padding=2)(x)
    with pytest.raises(ndl.NeedleError, match=r"max_pool2d: expected an NCHW input \(4-D\), got "
                                              r"shape \(2, 4, 3\)"):
        ndl.max_pool2d(t64(np.zeros((2, 4, 3)), device), 2)
    with pytest.raises(ndl.NeedleError, match="avg_pool2d: expected a floating-point input, got "
                                              "dtype int64"):
        ndl.avg_pool2d(ndl.Tensor(np.zeros((1, 1, 2, 2)), device=device, dtype="int64",
                                  requires_grad=False), 2)
    with pytest.raises(ndl.NeedleError, match="max_pool2d: kernel_size must be >= 1"):
        ndl.max_pool2d(x, 0)


def test_pooling_in_a_model_trains(device):
    """A tiny conv net with both pools: the loss goes down under SGD."""
    np.random.seed(0)
    model = nn.Sequential(nn.Conv(1, 4, 3, device=device), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv(4, 4, 3, device=device), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(16, 2, device=device))
    x = ndl.Tensor(np.random.randn(8, 1, 8, 8), device=device)
    y = ndl.Tensor((x.numpy().mean(axis=(1, 2, 3)) > 0).astype(np.float32), device=device)
    opt = ndl.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(20):
        loss = nn.SoftmaxLoss()(model(x), y)
        opt.reset_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.numpy()))
    assert losses[-1] < 0.7 * losses[0]


# -- PyTorch, where installed --------------------------------------------------------------------


def test_conv_and_pooling_agree_with_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 9, 8))
    for kernel, stride, padding, dilation in (((3, 3), 1, 1, 1), ((3, 5), (2, 1), (1, 2), 1),
                                               ((2, 3), (1, 3), (0, 1), (3, 2)), ((7, 7), 4, 3, 1)):
        w, b = rng.standard_normal((*kernel, 3, 4)), rng.standard_normal(4)
        xt, wt, bt = (torch.tensor(v, requires_grad=True) for v in (x, w.transpose(3, 2, 0, 1), b))
        yt = F.conv2d(xt, wt, bt, stride=stride, padding=padding, dilation=dilation)
        up = rng.standard_normal(tuple(yt.shape))
        (yt * torch.tensor(up)).sum().backward()
        xn, wn, bn = t64(x, None), t64(w, None), t64(b, None)
        yn = ndl.conv(xn.permute((0, 2, 3, 1)), wn, stride, padding, dilation,
                      bias=bn).permute((0, 3, 1, 2))
        (yn * t64(up, None, False)).sum().backward()
        np.testing.assert_allclose(bn.grad.numpy(), bt.grad.numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(yn.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(xn.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(wn.grad.numpy(), wt.grad.numpy().transpose(2, 3, 1, 0),
                                   rtol=1e-10, atol=1e-10)
    ties = np.round(x * 2)  # many equal values: PyTorch's tie rule must hold too
    for values in (x, ties):
        for kernel, stride, padding, dilation, ceil in (
                (2, None, 0, 1, False), ((3, 2), (2, 1), 1, 1, False), (3, 1, 1, (2, 1), False),
                (2, None, 0, 1, True), ((3, 2), (2, 3), (1, 0), 1, True), (3, 2, 1, (2, 1), True)):
            xt = torch.tensor(values, requires_grad=True)
            yt = F.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode=ceil)
            up = rng.standard_normal(tuple(yt.shape))
            (yt * torch.tensor(up)).sum().backward()
            xn = t64(values, None)
            yn = ndl.max_pool2d(xn, kernel, stride, padding, dilation, ceil_mode=ceil)
            (yn * t64(up, None, False)).sum().backward()
            np.testing.assert_array_equal(yn.numpy(), yt.detach().numpy())
            np.testing.assert_allclose(xn.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
            for count_pad in ((True, False) if dilation == 1 else ()):
                xt.grad = None
                yt = F.avg_pool2d(xt, kernel, stride, padding, ceil, count_pad)
                (yt * torch.tensor(up)).sum().backward()
                xn.grad = None
                yn = ndl.avg_pool2d(xn, kernel, stride, padding, ceil, count_pad)
                (yn * t64(up, None, False)).sum().backward()
                np.testing.assert_allclose(yn.numpy(), yt.detach().numpy(), rtol=1e-12)
                np.testing.assert_allclose(xn.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


# -- the backend contract's defaults ----------------------------------------------------------


def test_the_contracts_default_conv_kernels_conform():
    """A backend that keeps the contract's conv, im2col and col2im (built from required
    methods) passes check_backend and computes what the CPU kernels compute."""
    from needle.backend import Backend
    from needle.testing import check_backend
    from needle_backend_cpu import CPUBackend

    class Defaults(CPUBackend):
        name = "defaults"
        conv, im2col, col2im = Backend.conv, Backend.im2col, Backend.col2im

    report = check_backend(Defaults())
    assert report.ok and {"conv", "im2col", "col2im"} <= report.methods
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((3, 2, 3, 4))
    cpu, default = CPUBackend(), Defaults()
    for args in (((1, 1), (1, 1)), ((2, 1), (1, 2)), ((3, 2), (1, 1))):
        np.testing.assert_allclose(default.conv(x, w, *args), cpu.conv(x, w, *args), rtol=1e-12)
        cols = cpu.im2col(x, (3, 2), *args)
        np.testing.assert_array_equal(default.im2col(x, (3, 2), *args), cols)
        np.testing.assert_allclose(default.col2im(cols, x.shape, (3, 2), *args),
                                   cpu.col2im(cols, x.shape, (3, 2), *args), rtol=1e-12)
