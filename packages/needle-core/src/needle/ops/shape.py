"""Ops that move data around: views (reshape, transpose, broadcast), joins and slices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..autograd import NeedleError, Tensor, TensorOp, TensorTuple, TensorTupleOp, Value
from ._axes import normalize_axes, normalize_axis


class Reshape(TensorOp):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def compute(self, a):
        return self.backend.reshape(a, self.shape)

    def check(self, a):
        raise NeedleError(f"reshape: cannot reshape a tensor of shape {a.shape} "
                          f"({a.size} elements) into shape {self.shape}")

    def gradient(self, out_grad, node):
        return reshape(out_grad, node.inputs[0].shape)


def reshape(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    return Reshape(tuple(shape))(a)


class Permute(TensorOp):
    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def compute(self, a):
        return self.backend.transpose(a, self.axes)

    def gradient(self, out_grad, node):
        inverse = [0] * len(self.axes)
        for i, ax in enumerate(self.axes):
            inverse[ax] = i
        return permute(out_grad, tuple(inverse))


def permute(a: Tensor, axes: tuple[int, ...]) -> Tensor:
    axes = tuple(axes)
    if sorted(ax % a.ndim for ax in axes) != list(range(a.ndim)):
        raise NeedleError(f"permute: axes {axes} are not a permutation of the "
                          f"{a.ndim} axes of a tensor of shape {a.shape}")
    return Permute(tuple(ax % a.ndim for ax in axes))(a)


class Transpose(TensorOp):
    """Swap two axes (the last two by default), as the course defines it."""

    def __init__(self, axes: tuple[int, int] | None = None) -> None:
        self.axes = axes

    def compute(self, a):
        order = list(range(a.ndim))
        i, j = self.axes if self.axes is not None else (-1, -2)
        order[i], order[j] = order[j], order[i]
        return self.backend.transpose(a, order)

    def gradient(self, out_grad, node):
        return transpose(out_grad, self.axes)


def transpose(a: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    pair: tuple[int, int] | None = None
    if axes is not None:
        given = tuple(axes)
        if len(given) != 2:
            raise NeedleError(f"transpose swaps two axes; got {given} (use permute for more)")
        pair = (given[0], given[1])
        normalize_axes(pair, a.ndim, "transpose")
    elif a.ndim < 2:
        raise NeedleError(f"transpose needs at least 2 dimensions, got shape {a.shape}")
    return Transpose(pair)(a)


class BroadcastTo(TensorOp):
    """A broadcast *view* (no copy); the gradient sums over the broadcast axes."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def compute(self, a):
        return self.backend.broadcast_to(a, self.shape)

    def check(self, a):
        raise NeedleError(f"broadcast_to: cannot broadcast shape {a.shape} to {self.shape}")

    def gradient(self, out_grad, node):
        return sum_to_shape(out_grad, node.inputs[0].shape)


def broadcast_to(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    shape = tuple(shape)
    return a if a.shape == shape else BroadcastTo(shape)(a)


class MakeTensorTuple(TensorTupleOp):
    same_dtype = False

    def compute(self, *args):
        return tuple(args)

    def gradient(self, out_grad, node):
        return tuple(out_grad[i] for i in range(len(node.inputs)))


def make_tuple(*args: Tensor) -> TensorTuple:
    return MakeTensorTuple()(*args)


class TupleGetItem(TensorOp):
    def __init__(self, index: int) -> None:
        self.index = index

    def compute(self, a):
        return a[self.index]

    def gradient(self, out_grad, node):
        tup = node.inputs[0]
        b = self.backend
        parts = [out_grad if i == self.index else
                 Tensor.make_const(b.full(shape, 0.0, out_grad.dtype), device=out_grad.device)
                 for i, shape in enumerate(tup.shape)]
        return make_tuple(*parts)


def tuple_get_item(value: TensorTuple, index: int) -> Tensor:
    return TupleGetItem(index)(value)


class Stack(TensorOp):
    """Join same-shaped tensors along a new axis."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def compute(self, *arrays):
        return self.backend.stack(arrays, self.axis)

    def check(self, *inputs):
        shapes = {x.shape for x in inputs}
        if len(shapes) > 1:
            raise NeedleError(f"stack: all tensors need the same shape, got {sorted(shapes)}")

    def gradient(self, out_grad, node):
        return split(out_grad, self.axis).tuple()


def stack(args: Any, axis: int) -> Tensor:
    """``stack([a, b, ...], axis)`` (a TensorTuple is accepted too, as in the course)."""
    items = args.tuple() if isinstance(args, TensorTuple) else tuple(args)
    if not items:
        raise NeedleError("stack: needs at least one tensor")
    return Stack(axis)(*items)


class Split(TensorTupleOp):
    """Split along ``axis`` into its slices (the axis disappears), as the course defines it."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def compute(self, a):
        b = self.backend
        index: list[Any] = [slice(None)] * a.ndim
        parts = []
        for i in range(a.shape[self.axis]):
            index[self.axis] = i
            parts.append(b.getitem(a, tuple(index)))
        return tuple(parts)

    def gradient(self, out_grad, node):
        return stack(out_grad, self.axis)


def split(a: Tensor, axis: int) -> TensorTuple:
    axis = normalize_axis(axis, a.ndim, "split")
    return Split(axis)(a)


class Flip(TensorOp):
    def __init__(self, axes: tuple[int, ...] | None) -> None:
        self.axes = axes

    def compute(self, a):
        return self.backend.flip(a, self.axes if self.axes is not None else tuple(range(a.ndim)))

    def gradient(self, out_grad, node):
        return flip(out_grad, self.axes)


def flip(a: Tensor, axes: Any = None) -> Tensor:
    return Flip(normalize_axes(axes, a.ndim, "flip"))(a)


class Pad(TensorOp):
    """Zero padding: ``axes`` holds one ``(before, after)`` pair per dimension."""

    def __init__(self, axes: tuple[tuple[int, int], ...]) -> None:
        self.axes = axes

    def compute(self, a):
        return self.backend.pad(a, self.axes)

    def gradient(self, out_grad, node):
        index = tuple(slice(lo, s - hi) for (lo, hi), s in zip(self.axes, out_grad.shape))
        return get_item(out_grad, index)


def pad(a: Tensor, axes: Any) -> Tensor:
    axes = tuple((int(lo), int(hi)) for lo, hi in axes)
    if len(axes) != a.ndim or any(lo < 0 or hi < 0 for lo, hi in axes):
        raise NeedleError(f"pad: need one non-negative (before, after) pair for each of the "
                          f"{a.ndim} axes of shape {a.shape}, got {axes}")
    return Pad(axes)(a)


class Dilate(TensorOp):
    """Insert ``dilation`` zeros between elements along ``axes`` (for strided conv gradients)."""

    def __init__(self, axes: tuple[int, ...], dilation: int) -> None:
        self.axes = axes
        self.dilation = dilation

    def compute(self, a):
        b = self.backend
        step = self.dilation + 1
        shape = tuple(s * step if i in self.axes else s for i, s in enumerate(a.shape))
        out = b.full(shape, 0.0, a.dtype)
        b.setitem(out, self._index(a.ndim), a)
        return out

    def _index(self, ndim: int) -> tuple[slice, ...]:
        step = self.dilation + 1
        return tuple(slice(None, None, step) if i in self.axes else slice(None) for i in range(ndim))

    def gradient(self, out_grad, node):
        return undilate(out_grad, self.axes, self.dilation)


def dilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    axes = normalize_axes(axes, a.ndim, "dilate") or ()
    return Dilate(axes, dilation)(a) if dilation > 0 else a


class UnDilate(TensorOp):
    def __init__(self, axes: tuple[int, ...], dilation: int) -> None:
        self.axes = axes
        self.dilation = dilation

    def compute(self, a):
        step = self.dilation + 1
        index = tuple(slice(None, None, step) if i in self.axes else slice(None)
                      for i in range(a.ndim))
        return self.backend.getitem(a, index)

    def gradient(self, out_grad, node):
        return dilate(out_grad, self.axes, self.dilation)


def undilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    axes = normalize_axes(axes, a.ndim, "undilate") or ()
    return UnDilate(axes, dilation)(a) if dilation > 0 else a


class GetItem(TensorOp):
    """NumPy-style indexing (ints, slices, None, ellipsis, integer arrays)."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def compute(self, a):
        return self.backend.getitem(a, self.index)

    def check(self, a):
        raise NeedleError(f"getitem: index {self.index!r} does not fit a tensor of shape {a.shape}")

    def gradient(self, out_grad, node):
        return ScatterAdd(self.index, node.inputs[0].shape)(out_grad)


class ScatterAdd(TensorOp):
    """Zeros of ``shape`` with ``grad`` added at ``index`` (the gradient of getitem)."""

    def __init__(self, index: Any, shape: tuple[int, ...]) -> None:
        self.index = index
        self.shape = shape

    def compute(self, g):
        b = self.backend
        out = b.full(self.shape, 0.0, g.dtype)
        if _is_basic(self.index):
            b.setitem(out, self.index, g)  # basic indexing never repeats an element
        else:
            b.add_at(out, self.index, g)
        return out

    def gradient(self, out_grad, node):
        return GetItem(self.index)(out_grad)


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


def get_item(a: Tensor, index: Any) -> Tensor:
    if isinstance(index, Value):
        index = index.cached_data
    elif isinstance(index, tuple):
        index = tuple(i.cached_data if isinstance(i, Value) else i for i in index)
    if not _is_basic(index):
        b = a.device.backend
        items = index if isinstance(index, tuple) else (index,)
        int64 = np.dtype("int64")
        index = tuple(b.astype(b.array(i, int64) if isinstance(i, list) else i, int64)
                      if not (isinstance(i, (int, slice)) or i is None or i is Ellipsis) else i
                      for i in items)
        if len(index) == 1:
            index = index[0]
    return GetItem(index)(a)


from .mathematic import sum_to_shape  # noqa: E402
