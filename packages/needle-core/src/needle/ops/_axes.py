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
