"""2-D max and average pooling on NCHW images, as PyTorch's ``max_pool2d``/``avg_pool2d``.

Each channel is pooled alone, so (N, C, H, W) is viewed as N·C one-channel NHWC
images and goes through the same ``im2col``/``col2im`` kernels as convolution: the
forward reduces each row of the columns, the backward scatters each output's
gradient back through ``col2im``.
"""

from __future__ import annotations

from typing import Any

from ..autograd import NeedleError, Tensor, TensorOp
from ..backend import conv_out_shape
from .conv import Pair, as_pair, col2im


class _Pool(TensorOp):
    """Shared geometry: NCHW input seen as (N·C, H, W, 1) images, padded on H and W."""

    def __init__(self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1)) -> None:
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation

    def __repr__(self) -> str:  # the configuration, not the saved argmax
        return (f"{type(self).__name__}(kernel={self.kernel}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation})")

    def _images(self, x: Any, fill: float) -> Any:
        """x (N, C, H, W) as padded (N·C, H + 2ph, W + 2pw, 1) images filled with ``fill``."""
        b = self.backend
        n, c, h, w = x.shape
        images = b.reshape(x, (n * c, h, w, 1))
        ph, pw = self.padding
        if not (ph or pw):
            return images
        out = b.full((n * c, h + 2 * ph, w + 2 * pw, 1), fill, x.dtype)
        b.setitem(out, (slice(None), slice(ph, ph + h), slice(pw, pw + w)), images)
        return out

    def _geometry(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(padded image shape, output NCHW shape) for input ``shape``."""
        n, c, h, w = shape
        ph, pw = self.padding
        padded = (n * c, h + 2 * ph, w + 2 * pw, 1)
        _, ho, wo = conv_out_shape(padded, self.kernel, self.stride, self.dilation)
        return padded, (n, c, ho, wo)

    def _scatter(self, dcols: Any, shape: tuple[int, ...]) -> Any:
        """Columns' gradient (N·C·H'·W', KH·KW) back to the NCHW input gradient."""
        b = self.backend
        padded, _ = self._geometry(shape)
        dx = b.col2im(dcols, padded, self.kernel, self.stride, self.dilation)
        ph, pw = self.padding
        if ph or pw:
            dx = b.getitem(dx, (slice(None), slice(ph, ph + shape[2]), slice(pw, pw + shape[3])))
        return b.reshape(dx, shape)

    def _scatter_tensor(self, dcols: Tensor, shape: tuple[int, ...]) -> Tensor:
        """``_scatter`` in Tensor ops (for ``create_graph``)."""
        padded, _ = self._geometry(shape)
        dx = col2im(dcols, padded, self.kernel, self.stride, self.dilation)
        ph, pw = self.padding
        if ph or pw:
            dx = get_item(dx, (slice(None), slice(ph, ph + shape[2]), slice(pw, pw + shape[3])))
        return reshape(dx, shape)


class MaxPool(_Pool):
    """The maximum of each window; the gradient goes to the first maximum (PyTorch's tie
    rule: windows are scanned row by row and a later equal value does not win)."""

    def compute(self, x):
        b = self.backend
        cols = b.im2col(self._images(x, float("-inf")), self.kernel, self.stride, self.dilation)
        self.argmax = b.argmax(cols, 1)
        return b.reshape(b.max(cols, (1,)), self._geometry(x.shape)[1])

    def vjp(self, g, node):
        b = self.backend
        m = self.argmax.shape[0]
        dcols = b.full((m, self.kernel[0] * self.kernel[1]), 0.0, g.dtype)
        b.setitem(dcols, (b.arange(m, "int64"), self.argmax), b.reshape(g, (m,)))
        return (self._scatter(dcols, node.inputs[0].shape),)

    def gradient(self, g, node):
        m, kk = self.argmax.shape[0], self.kernel[0] * self.kernel[1]
        mask = Tensor.make_const(self.backend.one_hot(kk, self.argmax, g.dtype), device=g.device)
        dcols = broadcast_to(reshape(g, (m, 1)), (m, kk)) * mask
        return self._scatter_tensor(dcols, node.inputs[0].shape)


class AvgPool(_Pool):
    """The mean of each window. With ``count_include_pad`` (PyTorch's default) the zero
    padding counts towards the mean; without it, each window divides by the image
    pixels it covers."""

    def __init__(self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1),
                 count_include_pad: bool = True) -> None:
        super().__init__(kernel, stride, padding, dilation)
        self.count_include_pad = count_include_pad
        self.divisor: Any = kernel[0] * kernel[1]

    def compute(self, x):
        b = self.backend
        cols = b.im2col(self._images(x, 0.0), self.kernel, self.stride, self.dilation)
        out_shape = self._geometry(x.shape)[1]
        if not self.count_include_pad and self.padding != (0, 0):
            # how many image pixels each window covers: the same windows over an image of ones
            ones = b.full((1, 1, *x.shape[2:]), 1.0, x.dtype)
            counts = b.sum(b.im2col(self._images(ones, 0.0), self.kernel, self.stride,
                                    self.dilation), (1,))
            self.divisor = b.reshape(counts, (1, 1, *out_shape[2:]))
        return b.divide(b.reshape(b.sum(cols, (1,)), out_shape), self.divisor)

    def __repr__(self) -> str:
        return (f"AvgPool(kernel={self.kernel}, stride={self.stride}, padding={self.padding}, "
                f"count_include_pad={self.count_include_pad})")

    def vjp(self, g, node):
        b = self.backend
        kk = self.kernel[0] * self.kernel[1]
        m = g.size
        dcols = b.broadcast_to(b.reshape(b.divide(g, self.divisor), (m, 1)), (m, kk))
        return (self._scatter(dcols, node.inputs[0].shape),)

    def gradient(self, g, node):
        kk = self.kernel[0] * self.kernel[1]
        m = g.size
        divisor = self.divisor
        if not isinstance(divisor, int):
            divisor = broadcast_to(Tensor.make_const(divisor, device=g.device), g.shape)
        dcols = broadcast_to(reshape(g / divisor, (m, 1)), (m, kk))
        return self._scatter_tensor(dcols, node.inputs[0].shape)


def _pool_args(op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any,
               dilation: Any) -> tuple[Pair, Pair, Pair, Pair]:
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
    n, c, h, w = x.shape
    padded = (n * c, h + 2 * padding[0], w + 2 * padding[1], 1)
    _, ho, wo = conv_out_shape(padded, kernel, stride, dilation)
    if ho < 1 or wo < 1:
        raise NeedleError(f"{op}: kernel {kernel} (dilation {dilation}) is larger than the "
                          f"padded input {padded[1:3]} (input {(h, w)}, padding {padding})")
    return kernel, stride, padding, dilation


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1) -> Tensor:
    """Max over KH x KW windows of NCHW ``x``; ``stride`` defaults to the kernel size and
    the implicit padding is −inf, as in ``torch.nn.functional.max_pool2d``."""
    return MaxPool(*_pool_args("max_pool2d", x, kernel_size, stride, padding, dilation))(x)


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               count_include_pad: bool = True) -> Tensor:
    """Mean over KH x KW windows of NCHW ``x``, as ``torch.nn.functional.avg_pool2d``:
    zero padding counts towards the mean unless ``count_include_pad`` is false."""
    return AvgPool(*_pool_args("avg_pool2d", x, kernel_size, stride, padding, 1),
                   count_include_pad=count_include_pad)(x)


from .shape import broadcast_to, get_item, reshape  # noqa: E402
