"""Axis arguments: one normalisation, one error message."""

from __future__ import annotations

from typing import Any

from ..autograd import NeedleError


def normalize_axes(axes: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    """``None`` (all axes), an int or a tuple -> sorted non-negative tuple, or a clear error."""
    if axes is None:
        return None
    if isinstance(axes, int):
        axes = (axes,)
    if ndim == 0 and all(ax in (0, -1) for ax in axes):
        return None  # NumPy and PyTorch accept axis 0 (or -1) of a 0-d tensor
    out = []
    for ax in axes:
        if not isinstance(ax, int) or not -ndim <= ax < ndim:
            raise NeedleError(f"{op}: axis {ax} is out of range for a tensor of {ndim} dimensions "
                              f"(valid: {-ndim}..{ndim - 1})")
        out.append(ax % ndim)
    return tuple(sorted(set(out)))


def normalize_axis(axis: Any, ndim: int, op: str) -> int:
    """One axis (an int, negative counts from the end) -> non-negative, or a clear error."""
    if not isinstance(axis, int):
        raise NeedleError(f"{op}: axis must be an int, got {axis!r}")
    axes = normalize_axes(axis, ndim, op)
    assert axes is not None
    return axes[0]


def keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """``shape`` with the reduced axes kept as 1."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


_UNSET: Any = object()


def reduction_args(op: str, axes: Any = None, keepdims: Any = False, *, axis: Any = _UNSET,
                   dim: Any = _UNSET, keepdim: Any = _UNSET) -> tuple[Any, bool]:
    """One spelling from the three families: the course's ``axes=``, NumPy's ``axis=`` and
    PyTorch's ``dim=`` (and ``keepdims=`` / ``keepdim=``). Giving two of them is an error."""
    given = [(name, v) for name, v in (("axis", axis), ("dim", dim)) if v is not _UNSET]
    if given:
        if axes is not None or len(given) > 1:
            names = ["axes"] * (axes is not None) + [name for name, _ in given]
            raise TypeError(f"{op}: give the axes once, not as {' and '.join(names)}")
        axes = given[0][1]
    if keepdim is not _UNSET:
        keepdims = keepdim
    if isinstance(axes, list):
        axes = tuple(axes)
    return axes, bool(keepdims)


def broadcast_axes(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...] | None:
    """The axes of ``shape`` to sum so that it becomes ``target`` (``None``: it cannot)."""
    lead = len(shape) - len(target)
    if lead < 0:
        return None
    axes = list(range(lead))
    for i, t in enumerate(target):
        s = shape[lead + i]
        if s != t:
            if t != 1:
                return None
            axes.append(lead + i)
    return tuple(axes)
