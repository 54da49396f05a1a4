"""Basic tensor factories: uniform, normal, Bernoulli, constants and one-hot.

Uniform and normal values are drawn in float64, cast to ``dtype``, then scaled and
shifted in ``dtype``: the order of the course's NDArray devices (hw3 to hw4_extra), whose
``device.rand`` returns float32 that later float32 ops scale. Seeded float32 draws are
therefore the course's bit for bit, and the layers built from them reproduce its golden
arrays (hw4_extra's Transformer included: scaled in float64, over half its weights were a
float32 step away, enough to push outputs past the 1e-5 tolerance). hw1/hw2's NumPy
backend scaled in float64 before the cast; its values are within two float32 steps (of
the larger of ``|low|``, ``|high|``) of these. Integer dtypes are scaled in float64, then
cast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from needle import Device, NeedleError, Tensor, ops

DeviceLike = Device | str | None


def _shape(fn: str, shape: tuple[Any, ...]) -> tuple[int, ...]:
    """Accept ``f(2, 3)`` and ``f((2, 3))``; reject negative or non-integer sizes."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape):
        raise NeedleError(f"init.{fn}: shape must be non-negative integers, got {shape}")
    return tuple(int(s) for s in shape)


def _scale_dtype(dtype: Any) -> Any:
    """The dtype a draw is scaled in: its own if floating, else float64 (then cast)."""
    return dtype if np.dtype(dtype).kind == "f" else "float64"


def _finish(t: Tensor, dtype: Any, requires_grad: bool) -> Tensor:
    out = t.astype(dtype) if np.dtype(dtype) != t.dtype else t
    return out.requires_grad_(requires_grad)


def rand(*shape: Any, low: float = 0.0, high: float = 1.0, device: DeviceLike = None,
         dtype: Any = "float32", requires_grad: bool = False) -> Tensor:
    """Uniform on [low, high)."""
    u = ops.rand(_shape("rand", shape), dtype=_scale_dtype(dtype), device=device)
    return _finish(u * (high - low) + low, dtype, requires_grad)


def randn(*shape: Any, mean: float = 0.0, std: float = 1.0, device: DeviceLike = None,
          dtype: Any = "float32", requires_grad: bool = False) -> Tensor:
    """Normal with ``mean`` and ``std``."""
    z = ops.randn(_shape("randn", shape), dtype=_scale_dtype(dtype), device=device)
    return _finish(z * std + mean, dtype, requires_grad)


def randb(*shape: Any, p: float = 0.5, device: DeviceLike = None, dtype: Any = "float32",
          requires_grad: bool = False) -> Tensor:
    """Bernoulli(p) as 0/1 values: one uniform draw per element, kept where ``<= p``.

    The course defaults to ``dtype="bool"``; the default here is float32, a 0/1 mask
    that multiplies a float32 tensor without a cast.
    """
    if not 0.0 <= p <= 1.0:
        raise NeedleError(f"init.randb: p must be in [0, 1], got {p}")
    mask = ops.randb(_shape("randb", shape), p, dtype=dtype, device=device)
    return mask.requires_grad_(requires_grad)


def constant(*shape: Any, c: float = 1.0, device: DeviceLike = None, dtype: Any = "float32",
             requires_grad: bool = False) -> Tensor:
    """Every element equal to ``c``."""
    return ops.full(_shape("constant", shape), c, dtype=dtype, device=device,
                    requires_grad=requires_grad)


def ones(*shape: Any, device: DeviceLike = None, dtype: Any = "float32",
         requires_grad: bool = False) -> Tensor:
    return constant(*shape, c=1.0, device=device, dtype=dtype, requires_grad=requires_grad)


def zeros(*shape: Any, device: DeviceLike = None, dtype: Any = "float32",
          requires_grad: bool = False) -> Tensor:
    return constant(*shape, c=0.0, device=device, dtype=dtype, requires_grad=requires_grad)


def one_hot(n: int, i: Any, device: DeviceLike = None, dtype: Any = "float32",
            requires_grad: bool = False) -> Tensor:
    """Rows of the ``n``×``n`` identity picked by the class ids ``i``.

    ``i`` may be a Tensor (integer or float holding whole numbers), a NumPy array or a
    list; ids outside ``[0, n)`` or with a fractional part are an error, not garbage.
    """
    return ops.one_hot(i, n, dtype=dtype, device=device).requires_grad_(requires_grad)


def zeros_like(array: Tensor, *, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    """Zeros with ``array``'s shape and dtype (on its device unless ``device`` is given)."""
    return zeros(*array.shape, dtype=array.dtype, device=device or array.device,
                 requires_grad=requires_grad)


def ones_like(array: Tensor, *, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    """Ones with ``array``'s shape and dtype (on its device unless ``device`` is given)."""
    return ones(*array.shape, dtype=array.dtype, device=device or array.device,
                requires_grad=requires_grad)
