"""Comparisons and logic: bool results, never a gradient.

``==`` and ``!=`` compare element-wise, as in NumPy and PyTorch; tensors still hash by
identity, so the graph code (and course code) can key dicts by them.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp, Value
from ._axes import keepdims_shape, normalize_axes, normalize_axis, reduction_args


class NonDifferentiableOp(TensorOp):
    """An op whose output has no gradient (bool or integer results): never recorded."""

    def __call__(self, *args: Value) -> Tensor:
        out = Tensor.make_from_op(self, args)
        out.op, out.inputs, out.requires_grad = None, (), False
        return out


class Compare(NonDifferentiableOp):
    """Element-wise ``fn`` (``equal``, ``not_equal``, ``less``...) as a bool tensor."""

    def __init__(self, fn: str, scalar: Any = None) -> None:
        self.fn = fn
        self.scalar = _scalar(scalar)

    def compute(self, a, b=None):
        bk = self.backend
        other = self.scalar if b is None else b
        if self.fn == "not_equal":  # not in the backend contract: not (a == b)
            return bk.equal(bk.equal(a, other), False)
        return getattr(bk, self.fn)(a, other)


def compare(fn: str, a: Tensor, other: Any) -> Tensor:
    return Compare(fn)(a, other) if isinstance(other, Tensor) else Compare(fn, other)(a)


class Logical(NonDifferentiableOp):
    """``and`` / ``or`` / ``xor`` of bool tensors (NumPy's bool multiply, add, not-equal)."""

    same_dtype = False

    def __init__(self, fn: str) -> None:
        self.fn = fn

    def compute(self, a, b):
        bk = self.backend
        if self.fn == "and":
            return bk.multiply(a, b)
        if self.fn == "or":
            return bk.add(a, b)
        return bk.equal(bk.equal(a, b), False)


def _bools(op: str, *xs: Any) -> None:
    for x in xs:
        if not isinstance(x, Tensor) or x.dtype != bool:
            what = f"a {x.dtype} tensor" if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"{op} works on bool tensors (from comparisons), got {what}; "
                            f"compare first, e.g. (x > 0) {op} (x < 1)")


def logical(fn: str, a: Any, b: Any) -> Tensor:
    symbol = {"and": "&", "or": "|", "xor": "^"}[fn]
    if isinstance(b, bool):
        b = Tensor.make_const(a.device.backend.full((), b, bool), device=a.device)
    _bools(symbol, a, b)
    return Logical(fn)(a, b)


def logical_and(a: Tensor, b: Tensor) -> Tensor:
    return logical("and", a, b)


def logical_or(a: Tensor, b: Tensor) -> Tensor:
    return logical("or", a, b)


def logical_not(a: Tensor) -> Tensor:
    _bools("~", a)
    return Compare("equal", False)(a)


class Any_(NonDifferentiableOp):  # noqa: N801 - ``any`` is a builtin
    """Whether any (``all=False``) or every element over ``axes`` is non-zero."""

    def __init__(self, axes: tuple[int, ...] | None, keepdims: bool, every: bool) -> None:
        self.axes, self.keepdims, self.every = axes, keepdims, every

    def compute(self, a):
        bk = self.backend
        # count the zeros (for all) or the non-zeros (for any): right for empty input too
        hits = bk.equal(a, 0) if self.every else bk.equal(bk.equal(a, 0), False)
        counts = bk.sum(bk.astype(hits, "int64"), self.axes, self.keepdims)
        return bk.equal(counts, 0) if self.every else bk.greater(counts, 0)


def any(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:  # noqa: A001
    axes, keepdims = reduction_args("any", axes, keepdims, **kw)
    return Any_(normalize_axes(axes, a.ndim, "any"), keepdims, False)(a)


def all(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:  # noqa: A001
    axes, keepdims = reduction_args("all", axes, keepdims, **kw)
    return Any_(normalize_axes(axes, a.ndim, "all"), keepdims, True)(a)


class ArgMax(NonDifferentiableOp):
    """Index of the first maximum (``smallest=False``) or minimum along one axis, as int64."""

    def __init__(self, axis: int | None, keepdims: bool, smallest: bool) -> None:
        self.axis, self.keepdims, self.smallest = axis, keepdims, smallest

    def compute(self, a):
        bk = self.backend
        axes = None if self.axis is None else (self.axis,)
        if self.smallest:  # the first element equal to the minimum
            low = bk.negative(bk.max(bk.negative(_signed(bk, a)), axes, True))
            a = bk.equal(_signed(bk, a), low)
        elif a.dtype == bool:
            a = bk.astype(a, "int8")
        out = bk.astype(bk.argmax(a, self.axis), "int64")
        if self.keepdims:
            out = bk.reshape(out, keepdims_shape(a.shape, axes))
        return out


def _signed(bk: Any, a: Any) -> Any:
    """Negation must not wrap: bools and unsigned integers become int64 first."""
    return bk.astype(a, "int64") if a.dtype.kind in "bu" else a


def _argmax(name: str, a: Tensor, axes: Any, keepdims: bool, kw: dict, smallest: bool) -> Tensor:
    axes, keepdims = reduction_args(name, axes, keepdims, **kw)
    if isinstance(axes, tuple):
        if len(axes) != 1:
            raise TypeError(f"{name} takes one axis (or None), got {axes}")
        axes = axes[0]
    axis = None if axes is None else normalize_axis(axes, a.ndim, name)
    return ArgMax(axis, keepdims, smallest)(a)


def argmax(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    """Index of the first maximum over ``axis`` (or of the flattened tensor)."""
    return _argmax("argmax", a, axes, keepdims, kw, False)


def argmin(a: Tensor, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
    return _argmax("argmin", a, axes, keepdims, kw, True)


from .mathematic import _scalar  # noqa: E402
