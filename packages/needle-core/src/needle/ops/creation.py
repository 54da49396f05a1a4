"""New tensors, PyTorch-style: as_tensor, arange, full, the random rand, randn and randb,
and the ``_like`` forms.

Random draws go through the device (on ``cpu``: NumPy's global generator, so
``np.random.seed(n)`` reproduces the course's numbers)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import NeedleError, Tensor
from ..device import Device, default_device
from ..device import device as _as_device


def _device(device: Device | str | None, like: Tensor | None = None) -> Device:
    if device is not None:
        return _as_device(device)
    return like.device if like is not None else default_device()


def _new(data: Any, dev: Device, requires_grad: bool | None) -> Tensor:
    out = Tensor.make_const(data, device=dev)
    out.requires_grad = dtypes.resolve_requires_grad(data.dtype, bool(requires_grad))
    return out


def _dims(shape: Any) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def as_tensor(data: Any, *, dtype: Any = None, device: Device | str | None = None) -> Tensor:
    """``data`` as a constant Tensor, *sharing its memory* when it already is an array of
    ``device``'s backend with that dtype (a NumPy array on ``cpu``), else a converted copy
    (PyTorch's ``as_tensor``). For loaders that build a fresh array per batch: the tensor
    then costs no second copy. Writing into ``data`` later changes the tensor."""
    dev = _device(device)
    bk = dev.backend
    if (isinstance(data, getattr(bk, "array_types", ())) and not isinstance(data, np.generic)
            and (dtype is None or np.dtype(dtype) == getattr(data, "dtype", None))):
        return _new(data, dev, False)
    return _new(bk.array(data, dtypes.infer_dtype(data, dtype)), dev, False)


def arange(start: float, end: float | None = None, step: float = 1, *, dtype: Any = None,
           device: Device | str | None = None, requires_grad: bool = False) -> Tensor:
    """``start, start + step, ...`` below ``end``; int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise NeedleError("arange: step must not be zero")
    if dtype is None:
        whole = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.dtype("int64") if whole else dtypes.DEFAULT_FLOAT
    n = max(math.ceil((end - start) / step), 0)
    dev = _device(device)
    bk = dev.backend
    values = bk.add(bk.multiply(bk.arange(n, np.dtype("float64")), step), start)
    return _new(bk.astype(values, np.dtype(dtype)), dev, requires_grad)


def full(shape: Any, fill_value: float, *, dtype: Any = None,
         device: Device | str | None = None, requires_grad: bool = False) -> Tensor:
    """Every element ``fill_value``; float32 unless ``dtype`` (a bool value gives bool)."""
    shape = _dims(shape)
    if dtype is None:
        dtype = np.dtype(bool) if isinstance(fill_value, bool) else dtypes.DEFAULT_FLOAT
    dev = _device(device)
    return _new(dev.backend.full(shape, fill_value, np.dtype(dtype)), dev, requires_grad)


def rand(shape: Any, *, dtype: Any = None, device: Device | str | None = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1), float32 unless ``dtype``."""
    dev = _device(device)
    data = dev.rand(*_dims(shape), dtype=dtype or dtypes.DEFAULT_FLOAT)
    return _new(data, dev, requires_grad)


def randn(shape: Any, *, dtype: Any = None, device: Device | str | None = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal, float32 unless ``dtype``."""
    dev = _device(device)
    data = dev.randn(*_dims(shape), dtype=dtype or dtypes.DEFAULT_FLOAT)
    return _new(data, dev, requires_grad)


def randb(shape: Any, p: float = 0.5, *, dtype: Any = None,
          device: Device | str | None = None) -> Tensor:
    """Bernoulli(``p``) as 0/1 values (float32 unless ``dtype``): one uniform draw per
    element, kept where ``<= p``, which is the course's ``randb``. A constant: masks are
    not trained."""
    if not 0.0 <= p <= 1.0:
        raise NeedleError(f"randb: p is a probability in [0, 1], got {p}")
    dev = _device(device)
    return _new(dev.randb(*_dims(shape), p=p, dtype=dtype or dtypes.DEFAULT_FLOAT), dev, False)


def full_like(a: Tensor, fill_value: float, *, dtype: Any = None,
              device: Device | str | None = None, requires_grad: bool = False) -> Tensor:
    dev = _device(device, a)
    data = dev.backend.full(a.shape, fill_value, np.dtype(dtype) if dtype else a.dtype)
    return _new(data, dev, requires_grad)


def zeros_like(a: Tensor, **kw: Any) -> Tensor:
    return full_like(a, 0, **kw)


def ones_like(a: Tensor, **kw: Any) -> Tensor:
    return full_like(a, 1, **kw)


def rand_like(a: Tensor, *, dtype: Any = None, device: Device | str | None = None,
              requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1), shaped like ``a`` (its float dtype unless ``dtype``)."""
    dev = _device(device, a)
    dtype = np.dtype(dtype) if dtype else dtypes.float_dtype(a.dtype)
    return _new(dev.backend.rand(a.shape, dtype), dev, requires_grad)


def randn_like(a: Tensor, *, dtype: Any = None, device: Device | str | None = None,
               requires_grad: bool = False) -> Tensor:
    dev = _device(device, a)
    dtype = np.dtype(dtype) if dtype else dtypes.float_dtype(a.dtype)
    return _new(dev.backend.randn(a.shape, dtype), dev, requires_grad)

