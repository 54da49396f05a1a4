"""Ops that move data around: views (reshape, transpose, broadcast), joins and slices."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import (
    NeedleError,
    NeedleIndexError,
    Tensor,
    TensorOp,
    TensorTuple,
    TensorTupleOp,
    Value,
)
from ._axes import normalize_axes, normalize_axis


class Reshape(TensorOp):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def compute(self, a):
        return self.backend.reshape(a, self.shape)

    def check(self, a):
        raise NeedleError(f"reshape: cannot reshape a tensor of shape {a.shape} "
                          f"({a.size} elements) into shape {self.shape}")

    def backward(self, xp, g, node):
        return (xp.reshape(g, node.inputs[0].shape),)


def reshape(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    return Reshape(tuple(shape))(a)


class Permute(TensorOp):
    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def compute(self, a):
        return self.backend.transpose(a, self.axes)

    def backward(self, xp, g, node):
        inverse = [0] * len(self.axes)
        for i, ax in enumerate(self.axes):
            inverse[ax] = i
        return (xp.transpose(g, tuple(inverse)),)


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
        return self.backend.transpose(a, self._order(a.ndim))

    def _order(self, ndim: int) -> tuple[int, ...]:
        order = list(range(ndim))
        i, j = self.axes if self.axes is not None else (-1, -2)
        order[i], order[j] = order[j], order[i]
        return tuple(order)

    def backward(self, xp, g, node):  # a swap is its own inverse
        return (xp.transpose(g, self._order(g.ndim)),)


def transpose(a: Tensor, axes: tuple[int, int] | int | None = None, dim1: int | None = None
              ) -> Tensor:
    """Swap two axes: ``transpose(a, (i, j))`` (the course), ``transpose(a, i, j)`` (PyTorch),
    or the last two by default."""
    pair: tuple[int, int] | None = None
    spec: Any = (axes, dim1) if dim1 is not None else axes
    if spec is not None:
        given = tuple(spec)
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

    broadcasts = True

    def backward(self, xp, g, node):  # the walk sums it back over the broadcast axes
        return (g,)


def broadcast_to(a: Tensor, shape: tuple[int, ...]) -> Tensor:
    shape = tuple(shape)
    return a if a.shape == shape else BroadcastTo(shape)(a)


class MakeTensorTuple(TensorTupleOp):
    same_dtype = False

    def compute(self, *args):
        return tuple(args)

    def backward(self, xp, g, node):
        return tuple(g[i] for i in range(len(node.inputs)))


def make_tuple(*args: Tensor) -> TensorTuple:
    return MakeTensorTuple()(*args)


class TupleGetItem(TensorOp):
    def __init__(self, index: int) -> None:
        self.index = index

    def compute(self, a):
        return a[self.index]

    def backward(self, xp, g, node):
        return (xp.tuple_part(node.inputs[0], self.index, g),)


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

    def backward(self, xp, g, node):
        return xp.unstack(g, self.axis)


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

    def backward(self, xp, g, node):
        return (xp.stack(g, self.axis),)


def split(a: Tensor, axis: int) -> TensorTuple:
    axis = normalize_axis(axis, a.ndim, "split")
    return Split(axis)(a)


class Flip(TensorOp):
    def __init__(self, axes: tuple[int, ...] | None) -> None:
        self.axes = axes

    def compute(self, a):
        return self.backend.flip(a, self.axes if self.axes is not None else tuple(range(a.ndim)))

    def backward(self, xp, g, node):
        return (xp.flip(g, self.axes if self.axes is not None else tuple(range(g.ndim))),)


def flip(a: Tensor, axes: Any = None) -> Tensor:
    return Flip(normalize_axes(axes, a.ndim, "flip"))(a)


class Pad(TensorOp):
    """Zero padding: ``axes`` holds one ``(before, after)`` pair per dimension."""

    def __init__(self, axes: tuple[tuple[int, int], ...]) -> None:
        self.axes = axes

    def compute(self, a):
        return self.backend.pad(a, self.axes)

    def backward(self, xp, g, node):
        index = tuple(slice(lo, s - hi) for (lo, hi), s in zip(self.axes, g.shape))
        return (xp.getitem(g, index),)


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

    def backward(self, xp, g, node):  # the elements that were kept
        return (xp.getitem(g, self._index(g.ndim)),)


def dilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    axes = normalize_axes(axes, a.ndim, "dilate") or ()
    if dilation < 0:
        raise NeedleError(f"dilate: dilation must be >= 0, got {dilation}")
    return Dilate(axes, dilation)(a)  # a node even for dilation 0: the course counts on it


class UnDilate(TensorOp):
    def __init__(self, axes: tuple[int, ...], dilation: int) -> None:
        self.axes = axes
        self.dilation = dilation

    def compute(self, a):
        step = self.dilation + 1
        index = tuple(slice(None, None, step) if i in self.axes else slice(None)
                      for i in range(a.ndim))
        return self.backend.getitem(a, index)

    def backward(self, xp, g, node):  # back where they were taken from, zeros between
        shape = node.inputs[0].shape
        step = self.dilation + 1
        index = tuple(slice(None, None, step) if i in self.axes else slice(None)
                      for i in range(len(shape)))
        return (xp.scatter(g, index, shape),)


def undilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    axes = normalize_axes(axes, a.ndim, "undilate") or ()
    if dilation < 0:
        raise NeedleError(f"undilate: dilation must be >= 0, got {dilation}")
    return UnDilate(axes, dilation)(a)


class GetItem(TensorOp):
    """NumPy-style indexing: ints, slices, None, ellipsis and integer arrays (bool masks
    arrive here as their integer positions, see ``get_item``)."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def compute(self, a):
        return self.backend.getitem(a, self.index)

    def check(self, a):
        raise NeedleIndexError(f"index {self.index!r} does not fit a tensor of shape {a.shape}")

    def backward(self, xp, g, node):
        return (xp.scatter(g, self.index, node.inputs[0].shape),)


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

    def backward(self, xp, g, node):
        return (xp.getitem(g, self.index),)


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


def get_item(a: Tensor, index: Any) -> Tensor:
    """``a[index]`` as NumPy and PyTorch read it; a bad index is an ``IndexError``."""
    if not _is_basic(index):
        index = _advanced_index(a, index)
    return GetItem(index)(a)


def _advanced_index(a: Tensor, index: Any) -> Any:
    """Index arrays (Tensors, NumPy arrays, lists) as host int64 arrays, checked against
    ``a``'s shape; a bool mask becomes the positions where it is true (its ``nonzero``).
    Why on the host: the positions of a mask decide the result's shape, and CuPy would wrap
    an out-of-range position silently where NumPy raises."""
    items = list(index) if isinstance(index, tuple) else [index]
    items = [_index_array(i) for i in items]
    if sum(i is Ellipsis for i in items) > 1:
        raise NeedleIndexError("an index can only have a single ellipsis ('...')")
    used = sum(i.ndim if isinstance(i, np.ndarray) and i.dtype == bool else 1
               for i in items if i is not None and i is not Ellipsis)
    if used > a.ndim:
        raise NeedleIndexError(f"too many indices for a tensor of shape {a.shape}: "
                               f"{used} axes indexed")
    out: list[Any] = []
    dim = 0
    for item in items:
        if item is Ellipsis:
            out.append(item)
            dim += a.ndim - used
        elif item is None:
            out.append(item)
        elif isinstance(item, np.ndarray) and item.dtype == bool:
            span = a.shape[dim:dim + item.ndim]
            if item.shape != span:
                raise NeedleIndexError(f"boolean mask of shape {item.shape} does not match the "
                                       f"indexed axes {span} of a tensor of shape {a.shape}")
            out.extend(np.nonzero(item))
            dim += item.ndim
        elif isinstance(item, np.ndarray):
            size = a.shape[dim]
            if item.size and (item.min() < -size or item.max() >= size):
                bad = item[(item < -size) | (item >= size)].flat[0]
                raise NeedleIndexError(f"index {bad} is out of bounds for axis {dim} with "
                                       f"size {size} (tensor of shape {a.shape})")
            out.append(np.where(item < 0, item + size, item))
            dim += 1
        else:
            out.append(item)
            dim += 1
    return tuple(out) if len(out) != 1 else out[0]


def _index_array(item: Any) -> Any:
    """One item of an index: ints, slices, None and ... as they are; arrays as NumPy int64
    or bool arrays; floats refused."""
    if item is None or item is Ellipsis or isinstance(item, slice):
        return item
    if isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
        return int(item)
    if isinstance(item, Value):
        item = item._device.backend.to_numpy(item._array)
    elif not isinstance(item, np.ndarray):
        if hasattr(item, "__cuda_array_interface__") or hasattr(item, "get"):
            item = item.get()  # a CuPy array
        elif isinstance(item, (list, tuple)) and len(item) == 0:
            item = np.zeros(0, np.int64)
        elif isinstance(item, (list, tuple, bool, np.bool_)):
            item = np.asarray(item)
        else:
            raise NeedleIndexError(f"tensors are indexed by integers, slices, None, ..., and "
                                   f"integer or bool arrays; got {type(item).__name__} {item!r}")
    if item.dtype == bool:
        if item.ndim == 0:
            raise NeedleIndexError("a single True/False is not an index here; use a mask tensor")
        return item
    if item.dtype.kind not in "iu":
        raise NeedleIndexError(f"index arrays must hold integers or bools, got dtype {item.dtype} "
                               f"(fractional positions do not exist; convert with .astype)")
    return item.astype(np.int64, copy=False)


