"""2-D convolution on NCHW images (the course's ``nn.Conv``)."""

from __future__ import annotations

import math
from typing import Any

from needle import NeedleError, Tensor, ops

from .. import init
from .module import Module, Parameter, check_input


def _single(value: Any, name: str) -> int:
    """The course accepts ``k`` or ``(k, k)``; only square kernels and strides are supported."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise NeedleError(f"Conv: {name} must be square, got {tuple(value)}")
        value = value[0]
    if int(value) < 1:
        raise NeedleError(f"Conv: {name} must be >= 1, got {value}")
    return int(value)


class Conv(Module):
    """Multi-channel 2-D cross-correlation with 'same' padding ``kernel_size // 2``.

    ``y[n, o] = b[o] + Σ_c Σ_(i,j) x[n, c, s·h + i - p, s·w + j - p] · W[i, j, c, o]``
    with stride ``s`` and padding ``p = k // 2``.

    Shapes: input ``(N, in_channels, H, W)``, output ``(N, out_channels, ⌈H/s⌉, ⌈W/s⌉)``
    (NCHW, as in the course). The kernel is stored as ``(k, k, in, out)``, drawn with
    kaiming_uniform(fan_in=in·k·k, fan_out=out·k·k); the bias (if any) is
    uniform(±1/√(in·k·k)), drawn after the weight.

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of the output.
        kernel_size (int | tuple[int, int]): the kernel side ``k`` (square kernels only).
        stride (int | tuple[int, int]): the step between windows. Default: ``1``.
        bias (bool): add a learned bias per output channel. Default: ``True``.
        device (Device | None): where the parameters live. Default: the default device.
        dtype (str): the parameters' dtype. Default: ``"float32"``.

    Examples:
        >>> conv = ndl.nn.Conv(3, 8, kernel_size=3, stride=2)
        >>> conv(ndl.Tensor(np.ones((2, 3, 16, 16)))).shape
        (2, 8, 8, 8)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 bias: bool = True, device: Any = None, dtype: Any = "float32") -> None:
        super().__init__()
        k = _single(kernel_size, "kernel_size")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = k
        self.stride = _single(stride, "stride")
        self.padding = k // 2
        self.weight = Parameter(init.kaiming_uniform(
            in_channels * k * k, out_channels * k * k, shape=(k, k, in_channels, out_channels),
            device=device, dtype=dtype))
        self.bias = None
        if bias:
            bound = 1.0 / math.sqrt(in_channels * k * k)
            self.bias = Parameter(init.rand(out_channels, low=-bound, high=bound, device=device,
                                            dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, 4, 1, self.in_channels, "(N, {}, H, W)")
        out = ops.conv(x.permute((0, 2, 3, 1)), self.weight, self.stride, self.padding)
        if self.bias is not None:
            out = out + self.bias.reshape((1, 1, 1, self.out_channels)).broadcast_to(out.shape)
        return out.permute((0, 3, 1, 2))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, bias={self.bias is not None}")
