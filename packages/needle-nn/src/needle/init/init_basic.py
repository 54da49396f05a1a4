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
from needle import Device, NeedleError, Tensor, default_device
from needle import device as as_device

DeviceLike = Device | str | None


def _device(device: DeviceLike) -> Device:
    return default_device() if device is None else as_device(device)


def _shape(fn: str, shape: tuple[Any, ...]) -> tuple[int, ...]:
    """Accept ``f(2, 3)`` and ``f((2, 3))``; reject negative or non-integer sizes."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape):
        raise NeedleError(f"init.{fn}: shape must be non-negative integers, got {shape}")
    return tuple(int(s) for s in shape)


def _wrap(data: Any, dev: Device, dtype: Any, requires_grad: bool) -> Tensor:
    data = dev.backend.astype(data, np.dtype(dtype))
    return Tensor.make_const(data, requires_grad=requires_grad, device=dev)


def _scale_dtype(dtype: Any) -> Any:
    """The dtype a draw is scaled in: its own if floating, else float64 (then cast)."""
    return dtype if np.dtype(dtype).kind == "f" else "float64"


def rand(*shape: Any, low: float = 0.0, high: float = 1.0, device: DeviceLike = None,
         dtype: Any = "float32", requires_grad: bool = False) -> Tensor:
    """Uniform on [low, high)."""
    dev = _device(device)
    b = dev.backend
    u = dev.rand(*_shape("rand", shape), dtype=_scale_dtype(dtype))
    return _wrap(b.add(b.multiply(u, high - low), low), dev, dtype, requires_grad)


def randn(*shape: Any, mean: float = 0.0, std: float = 1.0, device: DeviceLike = None,
          dtype: Any = "float32", requires_grad: bool = False) -> Tensor:
    """Normal with ``mean`` and ``std``."""
    dev = _device(device)
    b = dev.backend
    z = dev.randn(*_shape("randn", shape), dtype=_scale_dtype(dtype))
    return _wrap(b.add(b.multiply(z, std), mean), dev, dtype, requires_grad)


def randb(*shape: Any, p: float = 0.5, device: DeviceLike = None, dtype: Any = "float32",
          requires_grad: bool = False) -> Tensor:
    """Bernoulli(p) as 0/1 values: one uniform draw per element, kept where ``<= p``.

    The course defaults to ``dtype="bool"``; the default here is float32, a 0/1 mask
    that multiplies a float32 tensor without a cast.
    """
    if not 0.0 <= p <= 1.0:
        raise NeedleError(f"init.randb: p must be in [0, 1], got {p}")
    dev = _device(device)
    data = dev.randb(*_shape("randb", shape), p=p, dtype=dtype)
    return Tensor.make_const(data, requires_grad=requires_grad, device=dev)


def constant(*shape: Any, c: float = 1.0, device: DeviceLike = None, dtype: Any = "float32",
             requires_grad: bool = False) -> Tensor:
    """Every element equal to ``c``."""
    dev = _device(device)
    data = dev.full(_shape("constant", shape), c, dtype=dtype)
    return Tensor.make_const(data, requires_grad=requires_grad, device=dev)


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
    dev = _device(device)
    ids = class_ids(i, n, "init.one_hot")
    return Tensor.make_const(dev.one_hot(n, ids, dtype=dtype), requires_grad=requires_grad,
                             device=dev)


def class_ids(labels: Any, n: int, who: str) -> np.ndarray:
    """``labels`` as an int64 NumPy array, checked to be whole numbers in ``[0, n)``."""
    raw = labels.numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if raw.dtype.kind not in "iub":
        if raw.dtype.kind != "f":
            raise NeedleError(f"{who}: class ids must be numbers, got dtype {raw.dtype}")
        if raw.size and not np.all(raw == np.floor(raw)):
            raise NeedleError(f"{who}: class ids must be whole numbers, got {raw.ravel()[:5]}...")
    ids = raw.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise NeedleError(f"{who}: class ids must lie in [0, {n}), "
                          f"got values from {ids.min()} to {ids.max()}")
    return ids


def zeros_like(array: Tensor, *, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    """Zeros with ``array``'s shape and dtype (on its device unless ``device`` is given)."""
    return zeros(*array.shape, dtype=array.dtype, device=device or array.device,
                 requires_grad=requires_grad)


def ones_like(array: Tensor, *, device: DeviceLike = None, requires_grad: bool = False) -> Tensor:
    """Ones with ``array``'s shape and dtype (on its device unless ``device`` is given)."""
    return ones(*array.shape, dtype=array.dtype, device=device or array.device,
                requires_grad=requires_grad)
