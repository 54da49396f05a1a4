"""Reductions: sum, max, and the numerically stable logsumexp / logsoftmax."""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp
from ._axes import keepdims_shape, normalize_axes, normalize_axis


def _expand(grad: Tensor, in_shape: tuple[int, ...], axes: tuple[int, ...] | None) -> Tensor:
    """Bring a reduced gradient back to ``in_shape`` (reshape, then a broadcast view)."""
    return broadcast_to(reshape(grad, keepdims_shape(in_shape, axes)), in_shape)


class Summation(TensorOp):
    def __init__(self, axes: Any = None, keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a):
        return self.backend.sum(a, self.axes, self.keepdims)

    def gradient(self, out_grad, node):
        return _expand(out_grad, node.inputs[0].shape, self.axes)


def summation(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:
    return Summation(normalize_axes(axes, a.ndim, "summation"), keepdims)(a)


class Max(TensorOp):
    """Max over axes; ties share the gradient equally."""

    def __init__(self, axes: Any = None, keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a):
        return self.backend.max(a, self.axes, self.keepdims)

    def gradient(self, out_grad, node):
        b = self.backend
        x = node.inputs[0]
        kshape = keepdims_shape(x.shape, self.axes)
        hit = b.astype(b.equal(x.cached_data, b.reshape(node.cached_data, kshape)), x.dtype)
        weights = b.divide(hit, b.sum(hit, self.axes, keepdims=True))
        return _expand(out_grad, x.shape, self.axes) * Tensor.make_const(weights, device=x.device)


def max(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return Max(normalize_axes(axes, a.ndim, "max"), keepdims)(a)


class LogSumExp(TensorOp):
    """log Σ exp(z) = log Σ exp(z − max z) + max z; the gradient is softmax(z)."""

    def __init__(self, axes: Any = None, keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, z):
        return self.backend.logsumexp(z, self.axes, self.keepdims)

    def gradient(self, out_grad, node):
        z = node.inputs[0]
        kshape = keepdims_shape(z.shape, self.axes)
        softmax = exp(z - broadcast_to(reshape(node, kshape), z.shape))
        return _expand(out_grad, z.shape, self.axes) * softmax


def logsumexp(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:
    return LogSumExp(normalize_axes(axes, a.ndim, "logsumexp"), keepdims)(a)


class LogSoftmax(TensorOp):
    """z − logsumexp(z) over one axis (the last by default)."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def compute(self, z):
        b = self.backend
        return b.subtract(z, b.logsumexp(z, (self.axis,), keepdims=True))

    def gradient(self, out_grad, node):
        # d/dz = g − softmax · Σ g  (softmax = exp(node))
        total = summation(out_grad, (self.axis,), keepdims=True)
        return out_grad - exp(node) * broadcast_to(total, node.shape)


def logsoftmax(a: Tensor, axis: int = -1) -> Tensor:
    axis = normalize_axis(axis, a.ndim, "logsoftmax")
    return LogSoftmax(axis)(a)


from .mathematic import exp  # noqa: E402
from .shape import broadcast_to, reshape  # noqa: E402
