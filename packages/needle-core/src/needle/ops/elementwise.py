"""More element-wise ops: sin, cos, abs, maximum/minimum, clamp, where, clone.

Gradients follow PyTorch at the kinks: abs'(0) = 0, a tie of ``maximum``/``minimum``
splits the gradient in half, ``clamp`` passes it where ``lo <= x <= hi``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import NeedleError, Tensor, TensorOp


class Sin(TensorOp):
    def compute(self, a):
        return self.backend.sin(dtypes.as_float(self.backend, a))

    def backward(self, xp, g, node):
        return (xp.multiply(g, xp.cos(xp.value(node.inputs[0]))),)


def sin(a: Tensor) -> Tensor:
    return Sin()(a)


class Cos(TensorOp):
    def compute(self, a):
        return self.backend.cos(dtypes.as_float(self.backend, a))

    def backward(self, xp, g, node):
        return (xp.negative(xp.multiply(g, xp.sin(xp.value(node.inputs[0])))),)


def cos(a: Tensor) -> Tensor:
    return Cos()(a)


def _sign(bk: Any, a: Any) -> Any:
    """-1, 0 or 1 in ``a``'s dtype (0 at 0: PyTorch's abs'(0))."""
    return bk.subtract(bk.astype(bk.greater(a, 0), a.dtype), bk.astype(bk.less(a, 0), a.dtype))


class Abs(TensorOp):
    def compute(self, a):
        bk = self.backend
        return a if a.dtype == bool else bk.maximum(a, bk.negative(a))

    def backward(self, xp, g, node):
        x = node.inputs[0]
        return (xp.multiply(g, xp.const(x, _sign(self.backend, x._array))),)


def abs(a: Tensor) -> Tensor:  # noqa: A001
    return Abs()(a)


class Maximum(TensorOp):
    """Element-wise max of two tensors (broadcasting); ``smallest=True`` gives the min."""

    def __init__(self, smallest: bool = False) -> None:
        self.smallest = smallest

    def compute(self, a, b):
        bk = self.backend
        if self.smallest:  # min(a, b) = -max(-a, -b)
            return bk.negative(bk.maximum(bk.negative(a), bk.negative(b)))
        return bk.maximum(a, b)

    broadcasts = True

    def backward(self, xp, g, node):
        a, b = node.inputs
        bk = self.backend
        ad, bd = a._array, b._array
        wins = bk.less(ad, bd) if self.smallest else bk.greater(ad, bd)
        ties = bk.astype(bk.equal(ad, bd), ad.dtype)
        share = bk.add(bk.astype(wins, ad.dtype), bk.multiply(ties, 0.5))
        return (xp.multiply(g, xp.const(a, share)),
                xp.multiply(g, xp.const(b, bk.subtract(1.0, share))))


def _as_tensor(x: Any, like: Tensor) -> Tensor:
    """A scalar or array operand as a constant tensor; Python scalars take ``like``'s dtype."""
    if isinstance(x, Tensor):
        return x
    if type(x) in (int, float, bool):
        dtype = like.dtype if not (type(x) is float and like.dtype.kind in "iub") \
            else dtypes.DEFAULT_FLOAT
        return Tensor.make_const(like.device.backend.full((), x, dtype), device=like.device)
    return Tensor(x, device=like.device, requires_grad=False)


def _pair(name: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{name} needs at least one Tensor, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    like = a if isinstance(a, Tensor) else b
    return _as_tensor(a, like), _as_tensor(b, like)


def maximum(a: Any, b: Any) -> Tensor:
    return Maximum()(*_pair("maximum", a, b))


def minimum(a: Any, b: Any) -> Tensor:
    return Maximum(smallest=True)(*_pair("minimum", a, b))


class Clamp(TensorOp):
    """``x`` limited to [lo, hi] (either bound may be ``None``), by scalar bounds."""

    def __init__(self, lo: Any, hi: Any) -> None:
        self.lo, self.hi = lo, hi

    def compute(self, a):
        bk = self.backend
        a = dtypes.with_scalar(bk, dtypes.with_scalar(bk, a, self.lo), self.hi)
        if self.lo is not None:
            a = bk.maximum(a, self.lo)
        if self.hi is not None:
            a = bk.negative(bk.maximum(bk.negative(a), -self.hi))
        return a

    def backward(self, xp, g, node):
        bk = self.backend
        x = node.inputs[0]._array
        inside = bk.full(x.shape, True, bool)
        if self.lo is not None:
            inside = bk.multiply(inside, bk.greater_equal(x, self.lo))
        if self.hi is not None:
            inside = bk.multiply(inside, bk.less_equal(x, self.hi))
        return (xp.multiply(g, xp.const(node, bk.astype(inside, g.dtype))),)


def clamp(a: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    """Limit ``a`` to [min, max]; bounds are scalars or tensors, either may be None."""
    if min is None and max is None:
        raise NeedleError("clamp: give min, max or both")
    if isinstance(min, Tensor) or isinstance(max, Tensor) or hasattr(min, "shape") \
            or hasattr(max, "shape"):
        out = a if min is None else maximum(a, min)
        return out if max is None else minimum(out, max)
    return Clamp(_scalar(min), _scalar(max))(a)


clip = clamp


class Where(TensorOp):
    """``a`` where ``cond`` holds, else ``b`` (all three broadcast). ``cond`` is a constant."""

    def __init__(self, cond: Any) -> None:
        self.cond = cond

    def compute(self, a, b):
        return self.backend.where(self.cond, a, b)

    broadcasts = True

    def backward(self, xp, g, node):
        a, b = node.inputs
        cond = xp.const(node, self.cond)
        return (xp.where(cond, g, 0.0) if a.requires_grad else None,
                xp.where(cond, 0.0, g) if b.requires_grad else None)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Pick from ``a`` where ``cond`` is true, else from ``b`` (NumPy's/PyTorch's ``where``)."""
    like = next((x for x in (a, b, cond) if isinstance(x, Tensor)), None)
    if like is None:
        raise TypeError("where needs at least one Tensor")
    if isinstance(cond, Tensor):
        c = cond._array
    else:
        c = like.device.backend.array(cond, np.dtype(bool))
    if c.dtype != bool:
        c = like.device.backend.astype(c, np.dtype(bool))
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        dtype = dtypes.DEFAULT_FLOAT
        a = Tensor.make_const(like.device.backend.full((), a, dtype), device=like.device)
    a, b = _pair("where", a, b)
    return Where(c)(a, b)


class Clone(TensorOp):
    """A copy that stays in the graph (``detach`` leaves it, ``clone`` does not)."""

    def compute(self, a):
        return self.backend.copy(a)

    def backward(self, xp, g, node):
        return (g,)


def clone(a: Tensor) -> Tensor:
    return Clone()(a)


from .mathematic import _scalar  # noqa: E402
