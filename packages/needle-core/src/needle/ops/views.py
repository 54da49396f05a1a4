"""PyTorch's shape habits on top of reshape: view, unsqueeze, squeeze, flatten; and cat."""

from __future__ import annotations

from typing import Any

from ..autograd import NeedleError, Tensor, TensorOp
from ._axes import normalize_axes, normalize_axis


def _dims(shape: Any) -> tuple[int, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def view(a: Tensor, *shape: Any) -> Tensor:
    """``reshape`` (needle's reshape is already a view whenever the layout allows)."""
    return reshape(a, _dims(shape))


def unsqueeze(a: Tensor, dim: int) -> Tensor:
    """A new axis of size 1 at ``dim`` (−1 appends), as ``a[..., None]`` would."""
    if not isinstance(dim, int) or not -a.ndim - 1 <= dim <= a.ndim:
        raise NeedleError(f"unsqueeze: dim {dim} is out of range for a tensor of {a.ndim} "
                          f"dimensions (valid: {-a.ndim - 1}..{a.ndim})")
    dim %= a.ndim + 1
    return reshape(a, a.shape[:dim] + (1,) + a.shape[dim:])


def squeeze(a: Tensor, dim: Any = None) -> Tensor:
    """Drop axes of size 1 (all, or those in ``dim``; a ``dim`` of another size stays)."""
    axes = normalize_axes(dim, a.ndim, "squeeze") if a.ndim else None
    shape = tuple(s for i, s in enumerate(a.shape)
                  if s != 1 or (axes is not None and i not in axes))
    return a if shape == a.shape else reshape(a, shape)


def flatten(a: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` (all by default) into one."""
    if a.ndim == 0:
        return reshape(a, (1,))
    start, end = (normalize_axis(d, a.ndim, "flatten") for d in (start_dim, end_dim))
    if start > end:
        raise NeedleError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = 1
    for s in a.shape[start:end + 1]:
        merged *= s
    return reshape(a, a.shape[:start] + (merged,) + a.shape[end + 1:])


class Concatenate(TensorOp):
    """Join tensors along an existing axis; the gradient slices it back apart."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def compute(self, *arrays):
        return self.backend.concatenate(arrays, self.axis)

    def check(self, *inputs):
        shapes = [x.shape for x in inputs]
        rest = {s[:self.axis] + s[self.axis + 1:] for s in shapes}
        if len({len(s) for s in shapes}) > 1 or len(rest) > 1:
            raise NeedleError(f"cat: tensors must match except along axis {self.axis}, "
                              f"got shapes {shapes}")

    def backward(self, xp, g, node):
        grads, start = [], 0
        for x in node.inputs:
            stop = start + x.shape[self.axis]
            index = (slice(None),) * self.axis + (slice(start, stop),)
            grads.append(xp.getitem(g, index) if x.requires_grad else None)
            start = stop
        return tuple(grads)


def cat(tensors: Any, dim: int = 0, *, axis: int | None = None) -> Tensor:
    """Join a sequence of tensors along ``dim`` (``axis=`` too, as NumPy spells it)."""
    items = tuple(tensors)
    if not items:
        raise NeedleError("cat: needs at least one tensor")
    if not all(isinstance(x, Tensor) for x in items):
        raise TypeError("cat: every item must be a Tensor, got "
                        + ", ".join(type(x).__name__ for x in items))
    dim = dim if axis is None else axis
    if any(x.ndim == 0 for x in items):
        raise NeedleError("cat: zero-dimensional tensors cannot be joined (use stack)")
    dim = normalize_axis(dim, items[0].ndim, "cat")
    return Concatenate(dim)(*items)


concatenate = cat


from .shape import reshape  # noqa: E402
