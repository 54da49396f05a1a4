"""The course's ``needle.backend_ndarray`` (``nd``): ``NDArray`` and its factories.

On a device whose backend keeps NumPy arrays (``cpu``), ``NDArray`` is a subclass of
``numpy.ndarray`` carrying the course's methods (``.numpy()``, ``.permute``,
``.compact()``, ``._handle.ptr()``, strides in elements...), so course code of hw3
and hw4 runs unchanged while hw2 code can still hand it straight to NumPy. Ops never
see it: tensors store plain arrays (NumPy is slower on subclasses) and ``cached_data``
shows them as an ``NDArray`` view. On other devices ``NDArray(...)`` returns the
backend's native array (CuPy's for ``cuda``).

Differences from the course, all NumPy's behaviour: comparisons give ``bool`` arrays
(the course gave 0.0/1.0 floats; both mean the same in arithmetic), full reductions
give 0-d arrays, and ``.numpy()`` shares memory instead of copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .device import REGISTRY, Device, cpu, cpu_numpy, cuda, default_device, device

__all__ = ["NDArray", "array", "cpu", "cpu_numpy", "cuda", "default_device", "device", "empty",
           "full"]


def _holds_numpy(dev: Device) -> bool:
    """Whether ``dev``'s backend stores plain NumPy arrays (then NDArray is its face)."""
    return np.ndarray in getattr(dev.backend, "array_types", ())


def _root(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (the course's "handle" of a view)."""
    while True:
        base = a.base
        if not isinstance(base, np.ndarray):  # as_strided views hide theirs one step deeper
            base = getattr(base, "base", None)
        if not isinstance(base, np.ndarray):
            return a
        a = base


class _Handle:
    """The course's ``_handle``: the buffer behind an array and all its views."""

    __slots__ = ("array",)

    def __init__(self, owner: np.ndarray) -> None:
        self.array = owner

    @property
    def size(self) -> int:
        return int(self.array.size)

    def ptr(self) -> int:
        """The buffer's address: the same for an array and every view of it."""
        return int(self.array.__array_interface__["data"][0])


class _NDArrayMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        # every backend's native array is an NDArray to course code (``isinstance`` checks)
        if isinstance(obj, np.ndarray):
            return True
        return any(isinstance(obj, getattr(b, "array_types", ())) for b in REGISTRY._backends.values())


class NDArray(np.ndarray, metaclass=_NDArrayMeta):
    """``NDArray(data, device=None)``: a float32 copy of ``data`` on ``device``, as in the course."""

    def __new__(cls, other: Any, device: Device | None = None) -> Any:
        return array(other, dtype="float32", device=device, _cls=cls)

    # -- construction --------------------------------------------------------
    @staticmethod
    def make(shape: Sequence[int], strides: Sequence[int] | None = None,
             device: Device | None = None, handle: _Handle | None = None,
             offset: int = 0) -> Any:
        """A new zeroed float32 array, or (given ``handle``) a view of that buffer with
        ``strides`` and ``offset`` counted in elements, as the course's ``NDArray.make``."""
        dev = device or default_device()
        shape = tuple(int(s) for s in shape)
        if handle is None:
            if not _holds_numpy(dev):
                return dev.full(shape, 0.0, "float32")
            return np.zeros(shape, np.float32).view(NDArray)
        flat = handle.array.reshape(-1)
        strides = tuple(strides) if strides is not None else _compact_strides(shape)
        if shape and any(s > 0 for s in shape):
            last = offset + sum((n - 1) * st for n, st in zip(shape, strides))
            if offset < 0 or last >= flat.size or min(strides, default=0) < 0:
                raise ValueError(f"NDArray.make: shape {shape}, strides {strides} and offset "
                                 f"{offset} reach outside a buffer of {flat.size} elements")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape, tuple(st * flat.itemsize for st in strides))
        return view.view(NDArray)

    # -- the course's attributes ---------------------------------------------
    @property  # type: ignore[misc]
    def strides(self) -> tuple[int, ...]:
        """Strides in elements, as the course counts them (NumPy's are in bytes)."""
        return tuple(s // self.itemsize for s in np.ndarray.strides.__get__(self))

    @property
    def device(self) -> Device:  # type: ignore[override]
        return cpu()

    @property
    def _handle(self) -> _Handle:
        return _Handle(_root(self))

    def numpy(self) -> np.ndarray:
        """The values as a plain NumPy array (a view: no copy)."""
        return self.view(np.ndarray)

    def is_compact(self) -> bool:
        """Row-major and covering its whole buffer (a slice of a larger array is not)."""
        return self.strides == _compact_strides(self.shape) and self.size == _root(self).size

    def compact(self) -> NDArray:
        return self if self.is_compact() else self.copy(order="C")

    def to(self, device: Device) -> Any:
        return self if _holds_numpy(device) else device.backend.array(self.numpy(), self.dtype)

    # -- views -----------------------------------------------------------------
    def permute(self, new_axes: Sequence[int]) -> np.ndarray:
        return self.transpose(tuple(new_axes))

    def broadcast_to(self, new_shape: Sequence[int]) -> np.ndarray:
        return np.broadcast_to(self, tuple(new_shape), subok=True)

    def as_strided(self, shape: Sequence[int], strides: Sequence[int]) -> np.ndarray:
        """A view with element ``strides`` over the same memory (the course's primitive)."""
        byte_strides = tuple(int(s) * self.itemsize for s in strides)
        return np.lib.stride_tricks.as_strided(self, tuple(shape), byte_strides, subok=True)

    def process_slice(self, sl: slice, dim: int) -> slice:
        """``sl`` with its start, stop and step made explicit for axis ``dim`` (course helper)."""
        n = self.shape[dim]
        start = 0 if sl.start is None else (sl.start + n if sl.start < 0 else sl.start)
        stop = n if sl.stop is None else (sl.stop + n if sl.stop < 0 else sl.stop)
        return slice(start, stop, 1 if sl.step is None else sl.step)

    # -- element-wise and friends (arithmetic, comparisons, @, sum, max: NumPy's) --
    def maximum(self, other: Any) -> np.ndarray:
        return np.maximum(self, other)

    def log(self) -> np.ndarray:
        return np.log(self)

    def exp(self) -> np.ndarray:
        return np.exp(self)

    def tanh(self) -> np.ndarray:
        return np.tanh(self)

    def pad(self, axes: Sequence[tuple[int, int]]) -> NDArray:
        """Zero padding, one ``(before, after)`` pair per axis."""
        return np.pad(self.numpy(), tuple(tuple(p) for p in axes)).view(NDArray)

    def flip(self, axes: int | Sequence[int] | None = None) -> np.ndarray:
        return np.flip(self, axes if axes is None or isinstance(axes, int) else tuple(axes))

    def __repr__(self) -> str:
        return f"NDArray({self.numpy()!s}, device={self.device!r})"

    def __str__(self) -> str:
        return str(self.numpy())


def _compact_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def array(a: Any, dtype: Any = "float32", device: Device | None = None,
          _cls: type = NDArray) -> Any:
    """A new array of ``device`` (default: the default device) holding ``a``, as ``dtype``."""
    dev = device or default_device()
    if hasattr(a, "numpy") and not isinstance(a, np.ndarray):
        a = a.numpy()
    dtype = np.dtype(dtype if dtype is not None else "float32")
    if not _holds_numpy(dev):
        return dev.backend.array(a, dtype)
    return np.array(a, dtype=dtype).view(_cls)


def empty(shape: tuple[int, ...], dtype: Any = "float32", device: Device | None = None) -> Any:
    return array(np.zeros(tuple(shape)), dtype, device)


def full(shape: tuple[int, ...], fill_value: float, dtype: Any = "float32",
         device: Device | None = None) -> Any:
    return array(np.full(tuple(shape), fill_value), dtype, device)
