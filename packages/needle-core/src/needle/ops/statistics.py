"""Reductions built for everyday use: mean, var, std, min, prod, softmax.

Each accepts ``axes=`` (the course), ``axis=`` (NumPy) or ``dim=`` (PyTorch), and
``keepdims=`` or ``keepdim=``, through ``reduction_args``. Most are compositions of
ops that already have gradients; ``prod`` is its own op, so zeros get a right
gradient (the product of the other elements), not 0/0.
"""

from __future__ import annotations

from typing import Any

from .. import dtypes
from ..autograd import NeedleError, Tensor, TensorOp
from ._axes import keepdims_shape, normalize_axes, normalize_axis, reduction_args


def _count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axes is None or i in axes:
            n *= s
    return n


def _floats(a: Tensor) -> Tensor:
    return a if dtypes.is_differentiable(a.dtype) else a.astype(dtypes.DEFAULT_FLOAT)


def sum(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:  # noqa: A001
    axes, keepdims = reduction_args("sum", axes, keepdims, **kw)
    return summation(a, axes, keepdims)


def mean(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """The average over ``axes`` (all by default); integer input gives float32."""
    axes, keepdims = reduction_args("mean", axes, keepdims, **kw)
    axes = normalize_axes(axes, a.ndim, "mean")
    return summation(_floats(a), axes, keepdims) / _count(a.shape, axes)


def var(a: Tensor, axes: Any = None, keepdims: bool = False, *, correction: int | None = None,
        unbiased: bool | None = None, ddof: int | None = None, **kw: Any) -> Tensor:
    """Variance over ``axes``, divided by N − correction: 1 by default, as in PyTorch
    (``unbiased=False``, ``correction=0`` or NumPy's ``ddof=0`` give the biased one)."""
    axes, keepdims = reduction_args("var", axes, keepdims, **kw)
    axes = normalize_axes(axes, a.ndim, "var")
    given = [c for c in (correction, ddof, None if unbiased is None else int(unbiased))
             if c is not None]
    if len(given) > 1:
        raise TypeError("var: give one of correction=, unbiased= or ddof=")
    c = given[0] if given else 1
    x = _floats(a)
    centred = x - broadcast_to(summation(x, axes, True) / _count(a.shape, axes), a.shape)
    n = _count(a.shape, axes) - c
    return summation(centred * centred, axes, keepdims) / (n if n > 0 else 0)


def std(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Square root of ``var`` (same arguments)."""
    return var(a, axes, keepdims, **kw) ** 0.5


def amax(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Maximum values over ``axes`` (only the values: no indices, unlike PyTorch's max(dim))."""
    axes, keepdims = reduction_args("max", axes, keepdims, **kw)
    return max(a, axes, keepdims)


def amin(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Minimum values over ``axes``: −max(−a), so ties share the gradient as in max."""
    axes, keepdims = reduction_args("min", axes, keepdims, **kw)
    if a.dtype.kind in "bu":  # negation would wrap
        return (-max(-(a.astype("int64")), axes, keepdims)).astype(a.dtype)
    return -max(-a, axes, keepdims)


class Prod(TensorOp):
    """Product over axes. d/dx_i = product of the other elements, zeros included."""

    def __init__(self, axes: tuple[int, ...] | None, keepdims: bool) -> None:
        self.axes, self.keepdims = axes, keepdims

    def compute(self, a):
        return self.backend.prod(a, self.axes, self.keepdims)

    def backward(self, xp, g, node):
        x = node.inputs[0]
        bk = self.backend
        zero = bk.equal(x._array, 0)
        zeros = bk.sum(bk.astype(zero, "int64"), self.axes, True)  # zeros in each group
        # x with zeros replaced by 1: its product over the group, divided by x_i, is the
        # product of the others when x_i is the group's only zero or there is no zero
        safe = xp.where(xp.const(x, zero), 1.0, xp.value(x))
        whole = xp.reshape(xp.prod(safe, self.axes, True), keepdims_shape(x.shape, self.axes))
        others = xp.divide(xp.broadcast_to(whole, x.shape), safe)
        keep = bk.where(zero, bk.equal(zeros, 1), bk.equal(zeros, 0))
        grad = xp.multiply(others, xp.const(x, bk.astype(keep, x.dtype)))
        return (xp.multiply(expand(xp, g, x.shape, self.axes), grad),)


def prod(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    axes, keepdims = reduction_args("prod", axes, keepdims, **kw)
    return Prod(normalize_axes(axes, a.ndim, "prod"), keepdims)(a)


def softmax(a: Tensor, axis: Any = None, **kw: Any) -> Tensor:
    """exp(a − max a) / Σ exp(a − max a) along one axis (the last by default): one op,
    no overflow, and large logits keep their digits."""
    axis, _ = reduction_args("softmax", axis, False, **kw)
    if axis is None:
        axis = -1
    if isinstance(axis, tuple):
        if len(axis) != 1:
            raise NeedleError(f"softmax takes one axis, got {axis}")
        axis = axis[0]
    axis = normalize_axis(axis, a.ndim, "softmax")
    return Softmax(axis)(_floats(a))


from .gradmath import expand  # noqa: E402
from .reduce import Softmax, max, summation  # noqa: E402, A004
from .shape import broadcast_to  # noqa: E402
