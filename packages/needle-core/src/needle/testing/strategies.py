"""Hypothesis strategies for property-testing ops: shapes, axes, arrays, tensors.

Values are bounded (``min_value``/``max_value``) and can keep away from zero
(``min_magnitude``: log, division, relu's kink) or from each other (``distinct``:
max without ties), because finite differences are only meaningful where the
function is smooth at the scale of ``eps``. Subnormals, NaN and inf are never drawn.
Example::

    import needle as ndl
    from hypothesis import given, strategies as st
    from needle.testing import gradcheck, strategies as nst

    @given(nst.broadcastable_shapes(), st.data())
    def test_add(shapes, data):
        a, b = (data.draw(nst.arrays(s, min_value=-3, max_value=3)) for s in shapes)
        assert gradcheck(ndl.add, a, b)
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

try:
    import hypothesis.strategies as st
    from hypothesis.extra import numpy as npst
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "needle.testing.strategies needs hypothesis: pip install 'needle-core[testing]'"
    ) from exc

from ..autograd import Tensor
from ..device import Device

__all__ = ["arrays", "axes", "broadcastable_shapes", "shapes", "tensors"]

Shape = tuple[int, ...]


def shapes(min_dims: int = 1, max_dims: int = 3, min_side: int = 1,
           max_side: int = 4) -> st.SearchStrategy[Shape]:
    """Array shapes with ``min_dims..max_dims`` axes of ``min_side..max_side`` each."""
    return npst.array_shapes(min_dims=min_dims, max_dims=max_dims,
                             min_side=min_side, max_side=max_side)


def broadcastable_shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
                         max_side: int = 4) -> st.SearchStrategy[tuple[Shape, Shape]]:
    """Pairs of shapes that broadcast together (missing leading axes, axes of size 1)."""
    return npst.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda b: (b.input_shapes[0], b.input_shapes[1]))


def axes(shape: Shape, *, allow_none: bool = True, allow_int: bool = True,
         allow_tuple: bool = True, allow_negative: bool = True) -> st.SearchStrategy[Any]:
    """Valid ``axes`` arguments for ``shape``: None, an int, or a tuple of distinct axes."""
    ndim = len(shape)
    options: list[st.SearchStrategy[Any]] = [st.none()] if allow_none else []
    if ndim:
        def sign(ax: int) -> st.SearchStrategy[int]:
            return st.sampled_from([ax, ax - ndim]) if allow_negative else st.just(ax)

        if allow_int:
            options.append(st.integers(0, ndim - 1).flatmap(sign))
        if allow_tuple:
            options.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                                    unique=True).flatmap(
                lambda axs: st.tuples(*[sign(a) for a in axs])))
    if not options:
        raise ValueError(f"axes: nothing to draw for shape {shape} with these options")
    return st.one_of(options)


_WIDTHS: dict[int, Literal[16, 32, 64]] = {2: 16, 4: 32, 8: 64}  # float bits by itemsize


def _bound(x: float, dtype: np.dtype) -> float:
    return float(dtype.type(x)) if dtype.itemsize < 8 else float(x)


def _elements(dtype: np.dtype, lo: float, hi: float, min_magnitude: float) -> st.SearchStrategy:
    if np.issubdtype(dtype, np.integer):
        return st.integers(math.ceil(lo), math.floor(hi)).filter(lambda v: abs(v) >= min_magnitude)

    def floats(a: float, b: float) -> st.SearchStrategy[float]:
        return st.floats(_bound(a, dtype), _bound(b, dtype), allow_nan=False,
                         allow_infinity=False, allow_subnormal=False, width=_WIDTHS[dtype.itemsize])

    if min_magnitude <= 0:
        return floats(lo, hi)
    parts = []
    if lo <= -min_magnitude:
        parts.append(floats(lo, min(hi, -min_magnitude)))
    if hi >= min_magnitude:
        parts.append(floats(max(lo, min_magnitude), hi))
    if not parts:
        raise ValueError(f"arrays: no value in [{lo}, {hi}] has magnitude >= {min_magnitude}")
    return st.one_of(parts)


def _distinct(shape: Shape, dtype: np.dtype, lo: float, hi: float) -> st.SearchStrategy:
    """Values at least half a step (``(hi - lo) / size / 2``) apart, in random order."""
    size = int(np.prod(shape, dtype=np.int64))
    step = (hi - lo) / max(size, 1)
    jitter = npst.arrays(np.float64, size, elements=st.floats(0.0, 0.5))
    return st.tuples(st.permutations(range(size)), jitter).map(
        lambda pj: (lo + (np.asarray(pj[0], dtype=np.float64) + 0.25 + pj[1]) * step)
        .reshape(shape).astype(dtype))


def arrays(shape: Shape | st.SearchStrategy[Shape], dtype: Any = np.float64,
           min_value: float = -10.0, max_value: float = 10.0, *, min_magnitude: float = 0.0,
           distinct: bool = False) -> st.SearchStrategy[np.ndarray]:
    """NumPy arrays of ``shape`` (a tuple or a strategy) with values in [min_value, max_value].

    ``min_magnitude`` keeps every |value| at or above it; ``distinct`` spaces the
    values apart (no ties, for max/argmax gradients).
    """
    dtype = np.dtype(dtype)
    if min_value > max_value:
        raise ValueError(f"arrays: min_value {min_value} > max_value {max_value}")
    if distinct:
        if min_magnitude > 0:
            raise ValueError("arrays: use either distinct or min_magnitude, not both")
        shape_st = shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))
        return shape_st.flatmap(lambda s: _distinct(s, dtype, min_value, max_value))
    return npst.arrays(dtype, shape, elements=_elements(dtype, min_value, max_value,
                                                        min_magnitude))


def tensors(shape: Shape | st.SearchStrategy[Shape], device: Device | str | None = None,
            dtype: Any = np.float64, requires_grad: bool = True,
            **array_options: Any) -> st.SearchStrategy[Tensor]:
    """Tensors on ``device`` built from :func:`arrays` (same value options)."""
    return arrays(shape, dtype, **array_options).map(
        lambda a: Tensor(a, device=device, dtype=dtype, requires_grad=requires_grad))
