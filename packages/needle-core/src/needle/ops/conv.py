"""2-D convolution in the course's layout: NHWC input, (KH, KW, C_in, C_out) kernel.

Forward and backward as PyTorch's and Caffe's CPU convolutions do them: the forward
multiplies the input's im2col columns by the kernel; the weight gradient is
columns^T @ grad, reusing the forward's columns; the input gradient is grad @ W^T
scattered back onto the image by col2im. Stride, padding and dilation need no
dilated gradient and no flipped kernel. ``im2col`` and ``col2im`` are ops too, each
the other's gradient, so every order of derivative is exact (``create_graph=True``).
"""

from __future__ import annotations

import functools
from typing import Any

from ..autograd import NeedleError, Tensor, TensorOp, is_grad_enabled
from ..backend import conv_out_shape

Pair = tuple[int, int]


def as_pair(value: Any, name: str, low: int = 1, op: str = "conv") -> Pair:
    """``k`` or ``(kh, kw)`` as a pair of ints >= ``low`` (PyTorch's and the course's forms)."""
    if type(value) is int and value >= low:  # the common case, once per layer call
        return value, value
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) or hasattr(v, "__index__") for v in pair):
        raise NeedleError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    pair = (int(pair[0]), int(pair[1]))
    if min(pair) < low:
        raise NeedleError(f"{op}: {name} must be >= {low}, got {value!r}")
    return pair


def _pad_hw(b: Any, x: Any, padding: Pair) -> Any:
    ph, pw = padding
    return b.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0))) if ph or pw else x


def _padded(shape: tuple[int, ...], padding: Pair) -> tuple[int, ...]:
    n, h, w, c = shape
    return n, h + 2 * padding[0], w + 2 * padding[1], c


def _crop(padding: Pair, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The index of the unpadded image inside its padded copy."""
    (ph, pw), (_, h, w, _) = padding, shape
    return slice(None), slice(ph, ph + h), slice(pw, pw + w), slice(None)


@functools.lru_cache(maxsize=256)
def _trim(image: Pair, kernel: Pair, out: Pair, stride: Pair, padding: Pair,
          dilation: Pair) -> tuple[tuple[slice, ...], tuple[slice, ...], Pair] | None:
    """Where kernel taps see only padding (a 3x3 kernel on a 1x1 image sees 1 pixel), the
    window of the padded image and the kernel taps that matter, and that window's (h, w);
    None when every tap sees the image somewhere. Those taps' products are all zero:
    leaving them out of im2col and the products is the same convolution, cheaper."""
    live = []
    for size, k, o, s, p, d in zip(image, kernel, out, stride, padding, dilation):
        def sees_image(t: int, size=size, o=o, s=s, p=p, d=d) -> bool:
            c = t * d - p  # the image row output 0 reads through tap t
            i = (-c + s - 1) // s if c < 0 else 0  # the first output whose read is >= 0
            return i < o and i * s + c <= size - 1
        taps = [t for t in range(k) if sees_image(t)]
        live.append((taps[0], taps[-1]) if taps else (0, k - 1))
    if all(t0 == 0 and t1 == k - 1 for (t0, t1), k in zip(live, kernel)):
        return None
    (t0, t1), (u0, u1) = live
    (ho, wo), (sh, sw), (dh, dw) = out, stride, dilation
    rows, cols = slice(t0 * dh, (ho - 1) * sh + t1 * dh + 1), slice(u0 * dw, (wo - 1) * sw + u1 * dw + 1)
    window = (rows.stop - rows.start, cols.stop - cols.start)
    return (slice(None), rows, cols, slice(None)), (slice(t0, t1 + 1), slice(u0, u1 + 1)), window


class Conv(TensorOp):
    """Cross-correlation with zero ``padding``, ``stride`` and ``dilation`` ((h, w) pairs),
    plus an optional bias (C_out,) added to every pixel: one node for a conv layer.

    The im2col columns stay on the op for the weight gradient only when a gradient can
    be asked for; ``backward`` frees them (a second backward recomputes them).
    """

    def __init__(self, stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> None:
        self.stride = as_pair(stride, "stride")
        self.padding = as_pair(padding, "padding", low=0)
        self.dilation = as_pair(dilation, "dilation")
        self.keep_columns = True
        self.cols = None
        self.trim = None

    def __call__(self, x: Tensor, w: Tensor,  # type: ignore[override]
                 bias: Tensor | None = None) -> Tensor:
        self.keep_columns = is_grad_enabled() and (x.requires_grad or w.requires_grad)
        return Tensor.make_from_op(self, (x, w) if bias is None else (x, w, bias))

    def compute(self, x, w, bias=None):
        b = self.backend
        xp = _pad_hw(b, x, self.padding)
        kh, kw, _, cout = w.shape
        n, ho, wo = conv_out_shape(xp.shape, (kh, kw), self.stride, self.dilation)
        if ho < 1 or wo < 1:
            raise NeedleError(self._size_error(x.shape, w.shape))
        self.trim = _trim(x.shape[1:3], (kh, kw), (ho, wo), self.stride, self.padding,
                          self.dilation)
        if self.trim is not None:  # views: only the taps that see the image
            xp, w = b.getitem(xp, self.trim[0]), b.getitem(w, self.trim[1])
            kh, kw = w.shape[:2]
        if not self.keep_columns:
            out = b.conv(xp, w, self.stride, self.dilation)
            return out if bias is None else b.add(out, bias)
        self.cols = b.im2col(xp, (kh, kw), self.stride, self.dilation)
        out = b.matmul(self.cols, b.reshape(w, (-1, cout)))
        if bias is not None:
            out = b.add(out, bias)
        return b.reshape(out, (n, ho, wo, cout))

    def __repr__(self) -> str:  # the configuration, not the kept columns
        return f"Conv(stride={self.stride}, padding={self.padding}, dilation={self.dilation})"

    def _size_error(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> str:
        (dh, dw), (ph, pw) = self.dilation, self.padding
        spans = "" if self.dilation == (1, 1) else \
            f" (spanning {(dh * (w_shape[0] - 1) + 1, dw * (w_shape[1] - 1) + 1)} with dilation)"
        return (f"conv: kernel {tuple(w_shape[:2])}{spans} is larger than the padded input "
                f"{(x_shape[1] + 2 * ph, x_shape[2] + 2 * pw)} (input {tuple(x_shape[1:3])}, "
                f"padding {self.padding})")

    def check(self, x, w, bias=None):
        if bias is not None and bias.shape != (w.shape[3],):
            raise NeedleError(f"conv: the bias must have shape ({w.shape[3]},) for a kernel of "
                              f"shape {w.shape}, got {bias.shape}")
        if x.ndim != 4 or w.ndim != 4:
            raise NeedleError(f"conv: expected NHWC input and (KH, KW, C_in, C_out) kernel "
                              f"(4-D each), got shapes {x.shape} and {w.shape}")
        if x.shape[3] != w.shape[2]:
            raise NeedleError(f"conv: input has {x.shape[3]} channels (shape {x.shape}) but the "
                              f"kernel expects {w.shape[2]} (shape {w.shape})")

    def backward(self, xp, g, node):
        x, w = node.inputs[:2]
        trim = self.trim
        wv = xp.value(w) if trim is None else xp.getitem(xp.value(w), trim[1])
        kernel, cout = tuple(wv.shape[:2]), wv.shape[3]
        g2 = xp.reshape(g, (-1, cout))
        gx = gw = gb = None
        if len(node.inputs) > 2 and node.inputs[2].requires_grad:
            gb = xp.sum(g2, (0,))
        if w.requires_grad:  # columns^T @ grad, with the forward's columns when kept
            cols = self.cols if not xp.records else None
            if cols is None:
                xpad = self._pad(xp, xp.value(x))
                cols = xp.im2col(xpad if trim is None else xp.getitem(xpad, trim[0]), kernel,
                                 self.stride, self.dilation)
            gw = xp.reshape(xp.matmul(xp.mT(cols), g2), tuple(wv.shape))
            if trim is not None:  # the left-out taps' gradient is zero
                gw = xp.scatter(gw, trim[1], w.shape)
        if not xp.records:
            self.cols = None  # a second backward recomputes them
        if x.requires_grad:  # col2im(grad @ W^T): KH·KW strided adds
            dcols = xp.matmul(g2, xp.mT(xp.reshape(wv, (-1, cout))))
            padded = _padded(x.shape, self.padding)
            crop = _crop(self.padding, x.shape)
            if trim is None:
                gx = xp.col2im(dcols, padded, kernel, self.stride, self.dilation)
            else:
                n, _, _, c = padded
                part = xp.col2im(dcols, (n, *trim[2], c), kernel, self.stride, self.dilation)
                if trim[0] == crop:  # the window is the image itself
                    return part, gw, gb
                gx = xp.scatter(part, trim[0], padded)
            if self.padding != (0, 0):
                gx = xp.getitem(gx, crop)
        return gx, gw, gb

    def _pad(self, xp: Any, x: Any) -> Any:
        ph, pw = self.padding
        return xp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0))) if ph or pw else x


def conv(a: Tensor, b: Tensor, stride: Any = 1, padding: Any = 1, dilation: Any = 1, *,
         bias: Tensor | None = None) -> Tensor:
    """Cross-correlate NHWC ``a`` with the (KH, KW, C_in, C_out) kernel ``b`` and add
    ``bias`` (C_out,), if given, to every output pixel.

    ``stride``, ``padding`` (zeros on each side) and ``dilation`` are ints or (h, w)
    pairs; the output is (N, H', W', C_out) with
    H' = (H + 2·pad_h − dil_h·(KH − 1) − 1) // stride_h + 1, as in PyTorch. The
    default padding is the course's 1.
    """
    return Conv(stride, padding, dilation)(a, b, bias)


class Im2Col(TensorOp):
    """NHWC (N, H, W, C) -> (N·H'·W', KH·KW·C): each row one kernel window (valid)."""

    def __init__(self, kernel: Pair, stride: Pair, dilation: Pair) -> None:
        self.kernel, self.stride, self.dilation = kernel, stride, dilation

    def compute(self, x):
        return self.backend.im2col(x, self.kernel, self.stride, self.dilation)

    def backward(self, xp, g, node):
        return (xp.col2im(g, node.inputs[0].shape, self.kernel, self.stride, self.dilation),)


class Col2Im(TensorOp):
    """The adjoint of ``Im2Col``: columns summed back onto an NHWC image of ``shape``."""

    def __init__(self, shape: tuple[int, ...], kernel: Pair, stride: Pair, dilation: Pair) -> None:
        self.shape, self.kernel, self.stride, self.dilation = shape, kernel, stride, dilation

    def compute(self, cols):
        return self.backend.col2im(cols, self.shape, self.kernel, self.stride, self.dilation)

    def check(self, cols):
        n, ho, wo = conv_out_shape(self.shape, self.kernel, self.stride, self.dilation)
        want = (n * ho * wo, self.kernel[0] * self.kernel[1] * self.shape[3])
        raise NeedleError(f"col2im: columns of shape {cols.shape} do not fit image {self.shape} "
                          f"with kernel {self.kernel}, stride {self.stride}, dilation "
                          f"{self.dilation}: expected {want}")

    def backward(self, xp, g, node):
        return (xp.im2col(g, self.kernel, self.stride, self.dilation),)


def _check_windows(op: str, shape: tuple[int, ...], kernel: Pair, stride: Pair,
                   dilation: Pair) -> None:
    if len(shape) != 4:
        raise NeedleError(f"{op}: expected an NHWC image (4-D), got shape {shape}")
    _, ho, wo = conv_out_shape(shape, kernel, stride, dilation)
    if ho < 1 or wo < 1:
        raise NeedleError(f"{op}: kernel {kernel} with dilation {dilation} does not fit the "
                          f"image {tuple(shape[1:3])} (shape {shape})")


def im2col(x: Tensor, kernel: Any, stride: Any = 1, dilation: Any = 1) -> Tensor:
    """The (N·H'·W', KH·KW·C) matrix of ``x``'s kernel windows (NHWC, no padding):
    ``conv(x, w, padding=0) == im2col(x, w.shape[:2]) @ w.reshape(-1, C_out)``."""
    kernel, stride = as_pair(kernel, "kernel", op="im2col"), as_pair(stride, "stride", op="im2col")
    dilation = as_pair(dilation, "dilation", op="im2col")
    _check_windows("im2col", x.shape, kernel, stride, dilation)
    return Im2Col(kernel, stride, dilation)(x)


def col2im(cols: Tensor, shape: Any, kernel: Any, stride: Any = 1, dilation: Any = 1) -> Tensor:
    """Sum the rows of ``cols`` back onto an NHWC image of ``shape`` (``im2col``'s adjoint)."""
    kernel, stride = as_pair(kernel, "kernel", op="col2im"), as_pair(stride, "stride", op="col2im")
    dilation = as_pair(dilation, "dilation", op="col2im")
    shape = tuple(int(s) for s in shape)
    _check_windows("col2im", shape, kernel, stride, dilation)
    return Col2Im(shape, kernel, stride, dilation)(cols)


