"""Reductions: sum, max, and the numerically stable logsumexp / logsoftmax."""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp
from ..backend import shift_of
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
        hit = b.astype(b.equal(x._array, b.reshape(node._array, kshape)), x.dtype)
        weights = b.divide(hit, b.sum(hit, self.axes, keepdims=True))
        return _expand(out_grad, x.shape, self.axes) * Tensor.make_const(weights, device=x.device)


def max(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return Max(normalize_axes(axes, a.ndim, "max"), keepdims)(a)


def shifted_softmax(z: Tensor, axes: tuple[int, ...] | None) -> Tensor:
    """softmax(z) over ``axes`` as e / Σe with e = exp(z − max z), max held constant.

    Why not exp(z − logsumexp(z)): once |z| is large (1e9 in float32) logsumexp(z)
    rounds to max z, and the difference loses every digit ([1e9, 1e9] gave [1, 1]).
    Holding the shift constant is exact, not an approximation: softmax(z − c) =
    softmax(z) for every c, so higher derivatives (create_graph) stay right.
    """
    m = shift_of(z.device.backend, z._array, axes)
    e = exp(z - broadcast_to(Tensor.make_const(m, device=z.device), z.shape))
    return e / broadcast_to(summation(e, axes, keepdims=True), z.shape)


class LogSumExp(TensorOp):
    """log Σ exp(z) = log Σ exp(z − max z) + max z; the gradient is softmax(z)."""

    def __init__(self, axes: Any = None, keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, z):
        return self.backend.logsumexp(z, self.axes, self.keepdims)

    def gradient(self, out_grad, node):
        z = node.inputs[0]
        return _expand(out_grad, z.shape, self.axes) * shifted_softmax(z, self.axes)


def logsumexp(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:
    if a.ndim == 0:  # a 0-d tensor is its own logsumexp: go through one axis of size 1
        normalize_axes(axes, 0, "logsumexp")
        return reshape(LogSumExp((0,), False)(reshape(a, (1,))), ())
    return LogSumExp(normalize_axes(axes, a.ndim, "logsumexp"), keepdims)(a)


class LogSoftmax(TensorOp):
    """z − logsumexp(z) over one axis (the last by default)."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def compute(self, z):
        # (z − m) − log Σ exp(z − m): subtracting logsumexp(z) from z would cancel all
        # digits at large |z| (logsoftmax([1e9, 1e9]) came out [0, 0], not −log 2)
        b, axes = self.backend, (self.axis,)
        shifted = b.subtract(z, shift_of(b, z, axes))
        return b.subtract(shifted, b.logsumexp(shifted, axes, keepdims=True))

    def gradient(self, out_grad, node):
        # d/dz = g − softmax · Σ g
        axes = (self.axis,)
        total = summation(out_grad, axes, keepdims=True)
        return out_grad - shifted_softmax(node.inputs[0], axes) * broadcast_to(total, node.shape)


def logsoftmax(a: Tensor, axis: int = -1) -> Tensor:
    axis = normalize_axis(axis, a.ndim, "logsoftmax")
    return LogSoftmax(axis)(a)


from .mathematic import exp  # noqa: E402
from .shape import broadcast_to, reshape  # noqa: E402
