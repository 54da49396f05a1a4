"""Reductions: sum, max, and the numerically stable logsumexp / logsoftmax."""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp
from ..backend import shift_of
from ._axes import keepdims_shape, normalize_axes, normalize_axis


class Summation(TensorOp):
    def __init__(self, axes: Any = None, keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a):
        return self.backend.sum(a, self.axes, self.keepdims)

    def backward(self, xp, g, node):
        return (expand(xp, g, node.inputs[0].shape, self.axes),)


def summation(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:
    return Summation(normalize_axes(axes, a.ndim, "summation"), keepdims)(a)


class Max(TensorOp):
    """Max over axes; ties share the gradient equally."""

    def __init__(self, axes: Any = None, keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a):
        return self.backend.max(a, self.axes, self.keepdims)

    def backward(self, xp, g, node):
        b = self.backend
        x = node.inputs[0]
        kshape = keepdims_shape(x.shape, self.axes)
        hit = b.astype(b.equal(x._array, b.reshape(node._array, kshape)), x.dtype)
        weights = b.divide(hit, b.sum(hit, self.axes, keepdims=True))
        return (xp.multiply(expand(xp, g, x.shape, self.axes), xp.const(x, weights)),)


def max(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return Max(normalize_axes(axes, a.ndim, "max"), keepdims)(a)


class LogSumExp(TensorOp):
    """log Σ exp(z) = log Σ exp(z − max z) + max z; the gradient is softmax(z)."""

    def __init__(self, axes: Any = None, keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, z):
        return self.backend.logsumexp(z, self.axes, self.keepdims)

    def backward(self, xp, g, node):
        # softmax from max-shifted exponentials (``xp.softmax``), never exp(z − logsumexp z):
        # once |z| is large (1e9 in float32) that difference loses every digit
        z = node.inputs[0]
        return (xp.multiply(expand(xp, g, z.shape, self.axes), xp.softmax(xp.value(z), self.axes)),)


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

    def backward(self, xp, g, node):
        # d/dz = g − softmax · Σ g
        axes = (self.axis,)
        total = xp.broadcast_to(xp.sum(g, axes, True), node.shape)
        return (xp.subtract(g, xp.multiply(xp.softmax(xp.value(node.inputs[0]), axes), total)),)


class Softmax(TensorOp):
    """exp(z − max z) / Σ exp(z − max z) over one axis, as one node (attention's hot op).

    d/dz = y · (g − Σ g·y): written on the output ``y``, so the Tensor world's
    derivative is again a function of z and second derivatives stay exact.
    """

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def compute(self, z):
        b, axes = self.backend, (self.axis,)
        e = b.exp(b.subtract(z, shift_of(b, z, axes)))
        return b.divide(e, b.sum(e, axes, keepdims=True))

    def backward(self, xp, g, node):
        y = xp.value(node)
        dot = xp.broadcast_to(xp.sum(xp.multiply(g, y), (self.axis,), True), node.shape)
        return (xp.multiply(y, xp.subtract(g, dot)),)


def logsoftmax(a: Tensor, axis: int = -1) -> Tensor:
    axis = normalize_axis(axis, a.ndim, "logsoftmax")
    return LogSoftmax(axis)(a)


from .gradmath import expand  # noqa: E402
from .shape import reshape  # noqa: E402
