"""2-D convolution on NCHW images (the course's ``nn.Conv``, with PyTorch's options)."""

from __future__ import annotations

import math
from typing import Any

from needle import Tensor, ops
from needle.ops.conv import as_pair

from .. import init
from .module import Module, Parameter, check_input


def _one_or_pair(pair: tuple[int, int]) -> int | tuple[int, int]:
    """Square settings read back as the course's single int; rectangular ones as pairs."""
    return pair[0] if pair[0] == pair[1] else pair


class Conv(Module):
    """Multi-channel 2-D cross-correlation, 'same' padding by default.

    out[n, o] = bias[o] + Σ_c Σ_(i,j) weight[i, j, c, o] · x[n, c, s·y + d·i − p, s·x + d·j − p]

    Input (N, C_in, H, W) and output (N, C_out, H', W') are NCHW, with
    H' = (H + 2·p_h − d_h·(KH − 1) − 1) // s_h + 1 as in PyTorch. The kernel is stored
    as ``(KH, KW, C_in, C_out)`` (the course's layout: PyTorch's ``weight.permute(2, 3,
    1, 0)``), drawn with kaiming_uniform(fan_in=C_in·KH·KW, fan_out=C_out·KH·KW); the
    bias, if any, is uniform(±1/√(C_in·KH·KW)), drawn after the weight.

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of the output.
        kernel_size (int or (int, int)): KH, KW.
        stride (int or (int, int)): step between windows. Default: ``1``.
        bias (bool): add a learned bias. Default: ``True``.
        device (Device | None): where the parameters live. Default: the default device.
        dtype (str): the parameters' dtype. Default: ``"float32"``.
        padding (int or (int, int), keyword only): zeros added on each side. Default:
            ``dilation · (kernel_size // 2)``, the course's ``k // 2`` ('same' size for odd
            kernels at stride 1).
        dilation (int or (int, int), keyword only): spacing of the kernel taps. Default: ``1``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> conv = nn.Conv(3, 8, (3, 5), stride=2, padding=(1, 2))
        >>> conv(ndl.init.randn(4, 3, 16, 16)).shape
        (4, 8, 8, 8)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 bias: bool = True, device: Any = None, dtype: Any = "float32", *,
                 padding: Any = None, dilation: Any = 1) -> None:
        super().__init__()
        kh, kw = as_pair(kernel_size, "kernel_size", op="Conv")
        stride, dilation = as_pair(stride, "stride", op="Conv"), as_pair(dilation, "dilation",
                                                                         op="Conv")
        if padding is None:
            padding = (dilation[0] * (kh // 2), dilation[1] * (kw // 2))
        padding = as_pair(padding, "padding", low=0, op="Conv")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _one_or_pair((kh, kw))
        self.stride = _one_or_pair(stride)
        self.padding = _one_or_pair(padding)
        self.dilation = _one_or_pair(dilation)
        fan = kh * kw
        self.weight = Parameter(init.kaiming_uniform(
            in_channels * fan, out_channels * fan, shape=(kh, kw, in_channels, out_channels),
            device=device, dtype=dtype))
        self.bias = None
        if bias:
            bound = 1.0 / math.sqrt(in_channels * fan)
            self.bias = Parameter(init.rand(out_channels, low=-bound, high=bound, device=device,
                                            dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, 4, 1, self.in_channels, "(N, {}, H, W)")
        out = ops.conv(x.permute((0, 2, 3, 1)), self.weight, self.stride, self.padding,
                       self.dilation, bias=self.bias)  # one node with its bias
        return out.permute((0, 3, 1, 2))

    def extra_repr(self) -> str:
        kh, kw = as_pair(self.kernel_size, "kernel_size")
        dh, dw = as_pair(self.dilation, "dilation")
        options = ""  # padding and dilation only where they differ from the defaults
        if as_pair(self.padding, "padding", low=0) != (dh * (kh // 2), dw * (kw // 2)):
            options += f", padding={self.padding}"
        if self.dilation != 1:
            options += f", dilation={self.dilation}"
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}{options}, bias={self.bias is not None}")
