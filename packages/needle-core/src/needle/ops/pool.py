"""2-D max and average pooling on NCHW images, as PyTorch's ``max_pool2d``/``avg_pool2d``.

Each channel is pooled alone, so (N, C, H, W) is viewed as N·C one-channel NHWC
images and goes through the same ``im2col``/``col2im`` kernels as convolution: the
forward reduces each row of the columns, the backward scatters each output's
gradient back through ``col2im``.
"""

from __future__ import annotations

from typing import Any

from ..autograd import NeedleError, Tensor, TensorOp
from .conv import Pair, as_pair


def pool_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                  ceil_mode: bool) -> int:
    """PyTorch's output length: floor (or ceil) of the window count, where with
    ``ceil_mode`` the last window must still start inside the image or its left padding."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class _Pool(TensorOp):
    """Shared geometry: NCHW input seen as (N·C, H, W, 1) images, padded on H and W (and,
    with ``ceil_mode``, on the bottom and right for the last, partial windows)."""

    def __init__(self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1),
                 ceil_mode: bool = False) -> None:
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        self.ceil_mode = ceil_mode

    def __repr__(self) -> str:  # the configuration, not the saved argmax
        return (f"{type(self).__name__}(kernel={self.kernel}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode})")

    def _geometry(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(padded image shape, output NCHW shape) for NCHW input ``shape``."""
        n, c = shape[:2]
        padded, out = [n * c], [n, c]
        for size, k, s, p, d in zip(shape[2:], self.kernel, self.stride, self.padding,
                                    self.dilation):
            o = pool_out_size(size, k, s, p, d, self.ceil_mode)
            padded.append(max(size + 2 * p, (o - 1) * s + d * (k - 1) + 1))
            out.append(o)
        return (*padded, 1), tuple(out)

    def _place(self, images: Any, padded: tuple[int, ...], fill: float, at: Pair) -> Any:
        """``images`` (M, h, w, 1) written at offset ``at`` into a ``padded`` array of ``fill``."""
        b = self.backend
        if images.shape == padded:
            return images
        out = b.full(padded, fill, images.dtype)
        b.setitem(out, (slice(None), slice(at[0], at[0] + images.shape[1]),
                        slice(at[1], at[1] + images.shape[2])), images)
        return out

    def _images(self, x: Any, fill: float) -> Any:
        """x (N, C, H, W) as padded (N·C, H', W', 1) images filled with ``fill``."""
        n, c, h, w = x.shape
        padded, _ = self._geometry(x.shape)
        return self._place(self.backend.reshape(x, (n * c, h, w, 1)), padded, fill,
                           self.padding)

    def _crop(self, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
        (ph, pw), padded = self.padding, self._geometry(shape)[0]
        if padded[1:3] == tuple(shape[2:]):
            return None
        return slice(None), slice(ph, ph + shape[2]), slice(pw, pw + shape[3])

    def _scatter(self, xp: Any, dcols: Any, shape: tuple[int, ...]) -> Any:
        """Columns' gradient (N·C·H'·W', KH·KW) back to the NCHW input gradient."""
        dx = xp.col2im(dcols, self._geometry(shape)[0], self.kernel, self.stride, self.dilation)
        crop = self._crop(shape)
        return xp.reshape(dx if crop is None else xp.getitem(dx, crop), shape)


class MaxPool(_Pool):
    """The maximum of each window; the gradient goes to the first maximum (PyTorch's tie
    rule: windows are scanned row by row and a later equal value does not win)."""

    def compute(self, x):
        b = self.backend
        cols = b.im2col(self._images(x, float("-inf")), self.kernel, self.stride, self.dilation)
        self.argmax = b.argmax(cols, 1)
        return b.reshape(b.max(cols, (1,)), self._geometry(x.shape)[1])

    def backward(self, xp, g, node):
        m, kk = self.argmax.shape[0], self.kernel[0] * self.kernel[1]
        at = (self.backend.arange(m, "int64"), self.argmax)  # one position per row
        dcols = xp.scatter(xp.reshape(g, (m,)), at, (m, kk), unique=True)
        return (self._scatter(xp, dcols, node.inputs[0].shape),)


class AvgPool(_Pool):
    """The mean of each window. With ``count_include_pad`` (PyTorch's default) the zero
    padding counts towards the mean; without it, each window divides by the image
    pixels it covers."""

    def __init__(self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1),
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(kernel, stride, padding, dilation, ceil_mode)
        self.count_include_pad = count_include_pad
        self.divisor: Any = kernel[0] * kernel[1]

    def compute(self, x):
        b = self.backend
        images = self._images(x, 0.0)
        cols = b.im2col(images, self.kernel, self.stride, self.dilation)
        out_shape = self._geometry(x.shape)[1]
        (ph, pw), (h, w) = self.padding, x.shape[2:]
        if self.count_include_pad:  # PyTorch: windows clipped to the padded image
            region, at = (h + 2 * ph, w + 2 * pw), (0, 0)
        else:  # windows clipped to the image
            region, at = (h, w), (ph, pw)
        if region != images.shape[1:3]:
            # how many counted pixels each window covers: the same windows over ones
            ones = self._place(b.full((1, *region, 1), 1.0, x.dtype),
                               (1, *images.shape[1:]), 0.0, at)
            counts = b.sum(b.im2col(ones, self.kernel, self.stride, self.dilation), (1,))
            self.divisor = b.reshape(counts, (1, 1, *out_shape[2:]))
        return b.divide(b.reshape(b.sum(cols, (1,)), out_shape), self.divisor)

    def __repr__(self) -> str:
        return (f"AvgPool(kernel={self.kernel}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}, count_include_pad={self.count_include_pad})")

    def backward(self, xp, g, node):
        kk = self.kernel[0] * self.kernel[1]
        m = g.size
        divisor = self.divisor
        if not isinstance(divisor, int):
            divisor = xp.broadcast_to(xp.const(node, divisor), tuple(g.shape))
        dcols = xp.broadcast_to(xp.reshape(xp.divide(g, divisor), (m, 1)), (m, kk))
        return (self._scatter(xp, dcols, node.inputs[0].shape),)


def _pool_args(op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any,
               dilation: Any, ceil_mode: bool) -> tuple[Pair, Pair, Pair, Pair, bool]:
    if len(x.shape) != 4:
        raise NeedleError(f"{op}: expected an NCHW input (4-D), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise NeedleError(f"{op}: expected a floating-point input, got dtype {x.dtype}")
    kernel = as_pair(kernel_size, "kernel_size", op=op)
    stride = kernel if stride is None else as_pair(stride, "stride", op=op)
    padding = as_pair(padding, "padding", low=0, op=op)
    dilation = as_pair(dilation, "dilation", op=op)
    for p, k, d in zip(padding, kernel, dilation):
        if p > (d * (k - 1) + 1) // 2:  # PyTorch's rule: no window may see only padding
            raise NeedleError(f"{op}: padding {padding} must be at most half of the kernel "
                              f"{kernel} (dilated: {d * (k - 1) + 1})")
    h, w = x.shape[2:]
    out = [pool_out_size(*args, bool(ceil_mode)) for args in
           zip((h, w), kernel, stride, padding, dilation)]
    if min(out) < 1:
        raise NeedleError(f"{op}: kernel {kernel} (dilation {dilation}) is larger than the "
                          f"padded input {(h + 2 * padding[0], w + 2 * padding[1])} (input "
                          f"{(h, w)}, padding {padding})")
    return kernel, stride, padding, dilation, bool(ceil_mode)


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, *, ceil_mode: bool = False) -> Tensor:
    """Max over KH x KW windows of NCHW ``x``, as ``torch.nn.functional.max_pool2d``:
    ``stride`` defaults to the kernel size, the implicit padding is −inf, and
    ``ceil_mode`` keeps a last, partial window."""
    return MaxPool(*_pool_args("max_pool2d", x, kernel_size, stride, padding, dilation,
                               ceil_mode))(x)


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Mean over KH x KW windows of NCHW ``x``, as ``torch.nn.functional.avg_pool2d``:
    zero padding counts towards the mean unless ``count_include_pad`` is false, and
    ``ceil_mode`` keeps a last, partial window (divided by what it covers)."""
    return AvgPool(*_pool_args("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode),
                   count_include_pad=count_include_pad)(x)


