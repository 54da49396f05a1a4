"""Affine and shape-only layers: ``Identity``, ``Linear``, ``Flatten``."""

from __future__ import annotations

import math
from typing import Any

from needle import Tensor, no_grad, ops

from .. import init
from .module import Module, Parameter, check_input


class Identity(Module):
    """Returns its input unchanged: ``y = x`` (a placeholder where a layer is optional).

    Shapes: any input shape; the output is the input.

    Examples:
        >>> x = ndl.Tensor([1.0, 2.0])
        >>> ndl.nn.Identity()(x) is x
        True
    """

    def forward(self, x: Tensor) -> Tensor:
        return x


class Linear(Module):
    """An affine map: ``y = x W + b`` with ``W`` of shape ``(in_features, out_features)``.

    ``W`` is stored ``(in, out)`` (the course's layout; PyTorch's is the transpose).
    Initialisation follows the course exactly, weight drawn before bias:
    ``W ~ kaiming_uniform(in, out)``; ``b ~ kaiming_uniform(out, 1)`` reshaped to ``(1, out)``.

    Shapes: input ``(..., in_features)`` (leading batch axes allowed), output
    ``(..., out_features)``.

    Args:
        in_features (int): the size of each input row.
        out_features (int): the size of each output row.
        bias (bool): add the learned bias ``b``. Default: ``True``.
        device (Device | None): where the parameters live. Default: the default device.
        dtype (str): the parameters' dtype. Default: ``"float32"``.

    Examples:
        >>> layer = ndl.nn.Linear(3, 2)
        >>> layer(ndl.Tensor(np.ones((4, 3)))).shape
        (4, 2)
        >>> layer.weight.shape, layer.bias.shape
        ((3, 2), (1, 2))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = "float32") -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(init.kaiming_uniform(in_features, out_features, device=device,
                                                     dtype=dtype))
        self.bias = None
        if bias:
            with no_grad():
                b = init.kaiming_uniform(out_features, 1, device=device, dtype=dtype)
                self.bias = Parameter(b.reshape((1, out_features)))

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x, 0, -1, self.in_features, "(N, {})")
        return ops.linear(x, self.weight, self.bias)  # x @ W + b as one fused op

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Keeps the first axis and flattens the rest: ``(N, d1, d2, ...) -> (N, d1·d2·...)``.

    Examples:
        >>> ndl.nn.Flatten()(ndl.Tensor(np.ones((2, 3, 4)))).shape
        (2, 12)
    """

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape((x.shape[0], math.prod(x.shape[1:])))
