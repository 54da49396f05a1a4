"""2-D max and average pooling on NCHW images, as PyTorch's ``nn.MaxPool2d``/``nn.AvgPool2d``."""

from __future__ import annotations

from typing import Any

from needle import Tensor, ops

from .module import Module


class MaxPool2d(Module):
    """The maximum over each KH x KW window of every channel.

    out[n, c, y, x] = max_(i,j) input[n, c, s·y + d·i − p, s·x + d·j − p], with the
    implicit padding −inf. Input (N, C, H, W), output (N, C, H', W') with
    H' = (H + 2·p_h − d_h·(KH − 1) − 1) // s_h + 1. The gradient goes to the first
    maximum of a window (row by row), as in PyTorch.

    Args:
        kernel_size (int or (int, int)): window size KH, KW.
        stride (int or (int, int), optional): step between windows. Default: ``kernel_size``.
        padding (int or (int, int)): −inf added on each side, at most half the window.
            Default: ``0``.
        dilation (int or (int, int)): spacing of the window's elements. Default: ``1``.
        ceil_mode (bool, keyword only): round the output size up, keeping a last, partial
            window that starts inside the input. Default: ``False``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> nn.MaxPool2d(2)(ndl.init.randn(1, 3, 8, 6)).shape
        (1, 3, 4, 3)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, *, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                              ceil_mode=self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """The mean over each KH x KW window of every channel.

    out[n, c, y, x] = 1/(KH·KW) · Σ_(i,j) input[n, c, s·y + i − p, s·x + j − p], zero
    padding counted in the mean unless ``count_include_pad`` is false (then each window
    divides by the image pixels it covers). Input (N, C, H, W), output (N, C, H', W')
    with H' = (H + 2·p_h − KH) // s_h + 1.

    Args:
        kernel_size (int or (int, int)): window size KH, KW.
        stride (int or (int, int), optional): step between windows. Default: ``kernel_size``.
        padding (int or (int, int)): zeros added on each side, at most half the window.
            Default: ``0``.
        ceil_mode (bool): round the output size up, keeping a last, partial window that
            starts inside the input (divided by what it covers). Default: ``False``.
        count_include_pad (bool): count the padding in the mean. Default: ``True``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> nn.AvgPool2d(3, stride=2, padding=1)(ndl.init.randn(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad)

    def extra_repr(self) -> str:
        extra = ", ceil_mode=True" if self.ceil_mode else ""
        extra += "" if self.count_include_pad else ", count_include_pad=False"
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}{extra}")
