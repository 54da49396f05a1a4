"""Layer and batch normalisation.

BatchNorm keeps running statistics as buffers, updated in training as
``running = (1 - momentum) * running + momentum * observed``. The observed variance
is the batch's *biased* variance (divide by N): the course's reference values use
it, although its handout says unbiased and PyTorch uses unbiased for the running
estimate. The updates work on detached data, so they never build graph.
"""

from __future__ import annotations

from typing import Any

from needle import NeedleError, Tensor, ops

from .. import init
from .module import Module, Parameter, check_input, describe


class LayerNorm1d(Module):
    """Normalises each row over its features, then scales and shifts (learned).

    ``y = w · (x - E[x]) / √(Var[x] + eps) + b``, with the mean and the biased variance over
    the last axis.

    Shapes: input ``(..., dim)``, output the same.

    Args:
        dim (int): the number of features (the last axis).
        eps (float): added to the variance for stability. Default: ``1e-5``.
        device (Device | None): where the parameters live. Default: the default device.
        dtype (str): the parameters' dtype. Default: ``"float32"``.

    Examples:
        >>> norm = ndl.nn.LayerNorm1d(4)
        >>> y = norm(ndl.Tensor([[1.0, 2.0, 3.0, 4.0]]))
        >>> abs(float(y.numpy().mean())) < 1e-6, round(float(y.numpy().std()), 3)
        (True, 1.0)
    """

    def __init__(self, dim: int, eps: float = 1e-5, device: Any = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, 0, -1, self.dim, "(N, {})")
        stat_shape = (*x.shape[:-1], 1)
        mean = (x.sum((x.ndim - 1,)) / self.dim).reshape(stat_shape)
        centred = x - mean.broadcast_to(x.shape)
        var = ((centred * centred).sum((x.ndim - 1,)) / self.dim).reshape(stat_shape)
        y = centred / ((var + self.eps) ** 0.5).broadcast_to(x.shape)
        return self.weight.broadcast_to(x.shape) * y + self.bias.broadcast_to(x.shape)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class BatchNorm1d(Module):
    """Normalises each feature over the batch, then scales and shifts (learned).

    In training ``y = w · (x - E[x]) / √(Var[x] + eps) + b`` with the batch's mean and
    biased variance per feature, and the running statistics are updated as
    ``running = (1 - momentum) · running + momentum · observed``; in eval the running
    statistics replace the batch's.

    Shapes: input ``(N, dim)``, output the same.

    Args:
        dim (int): the number of features.
        eps (float): added to the variance for stability. Default: ``1e-5``.
        momentum (float): the weight of each batch in the running statistics. Default: ``0.1``.
        device (Device | None): where the parameters and buffers live. Default: the default device.
        dtype (str): their dtype. Default: ``"float32"``.

    Examples:
        >>> bn = ndl.nn.BatchNorm1d(3)
        >>> y = bn(ndl.Tensor(np.arange(12.0).reshape(4, 3)))
        >>> bool(np.abs(y.numpy().mean(axis=0)).max() < 1e-6)
        True
        >>> bn.running_mean.numpy().round(4)
        array([0.45, 0.55, 0.65], dtype=float32)
    """

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1, device: Any = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.momentum = momentum
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_mean", init.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_var", init.ones(dim, device=device, dtype=dtype))

    _shape_in: tuple[int, ...] | None = None  # BatchNorm2d's NCHW shape, for messages

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, 2, 1, self.dim, "(N, {})")
        n = x.shape[0]
        if n == 0:
            raise NeedleError(f"{describe(self)}: the batch is empty (input of shape {x.shape})")
        if self.training:
            if n == 1:  # PyTorch's rule: the batch variance would be 0, the output 0
                raise NeedleError(f"{describe(self)} in training needs more than one value per "
                                  f"channel to take statistics from, got input of shape "
                                  f"{self._shape_in or x.shape}; use a larger batch or .eval()")
        return ops.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                              training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm2d(BatchNorm1d):
    """BatchNorm over the channels of NCHW images: statistics per channel over N, H and W.

    Shapes: input ``(N, dim, H, W)``, output the same. The arguments are
    ``BatchNorm1d``'s.

    Args:
        dim (int): the number of channels.
        eps (float): added to the variance for stability. Default: ``1e-5``.
        momentum (float): the weight of each batch in the running statistics. Default: ``0.1``.
        device (Device | None): where the parameters and buffers live. Default: the default device.
        dtype (str): their dtype. Default: ``"float32"``.

    Examples:
        >>> bn = ndl.nn.BatchNorm2d(3)
        >>> bn(ndl.Tensor(np.ones((2, 3, 4, 4)))).shape
        (2, 3, 4, 4)
    """

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, 4, 1, self.dim, "(N, {}, H, W)")
        n, c, h, w = x.shape
        rows = x.permute((0, 2, 3, 1)).reshape((n * h * w, c))
        self._shape_in = x.shape
        try:
            y = super().forward(rows)
        finally:
            self._shape_in = None
        return y.reshape((n, h, w, c)).permute((0, 3, 1, 2))
