"""Element-wise activations as modules (so they can sit in ``Sequential``)."""

from __future__ import annotations

from needle import Tensor, ops

from .module import Module


class ReLU(Module):
    """Rectified linear unit, element-wise: ``max(x, 0)``.

    Shapes: any input shape; the output has the same shape.

    Examples:
        >>> relu = ndl.nn.ReLU()
        >>> relu(ndl.Tensor([-1.0, 0.5])).numpy().tolist() == [0.0, 0.5]
        True
    """

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class Tanh(Module):
    """Hyperbolic tangent, element-wise: ``tanh(x) = (e^x - e^-x) / (e^x + e^-x)``.

    Shapes: any input shape; the output has the same shape.

    Examples:
        >>> ndl.nn.Tanh()(ndl.Tensor([0.0])).numpy()
        array([0.], dtype=float32)
    """

    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class Sigmoid(Module):
    """Logistic sigmoid, element-wise: ``σ(x) = 1 / (1 + e^-x)``.

    Shapes: any input shape; the output has the same shape.

    Examples:
        >>> ndl.nn.Sigmoid()(ndl.Tensor([0.0])).numpy()
        array([0.5], dtype=float32)
    """

    def forward(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)
