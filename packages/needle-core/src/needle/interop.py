"""Zero-copy exchange with PyTorch, JAX, CuPy and NumPy through DLPack.

``torch.from_dlpack(t)`` (or ``jnp.from_dlpack``, ``np.from_dlpack``) reads a
needle Tensor's memory through ``Tensor.__dlpack__``; :func:`from_dlpack` goes the
other way. Both share memory, so a write through one side is seen by the other,
and neither carries autograd history: gradients do not flow across libraries.

Why DLPack: it is the one protocol all of these implement for CPU *and* GPU
memory, without copies and without needle importing any of them. The DLPack
capsule itself comes from the backend's array (a NumPy or CuPy array), so
needle adds no C code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .autograd import NeedleError, Tensor
from .device import device as _as_device

if TYPE_CHECKING:
    from .device import Device

__all__ = ["from_dlpack"]

# DLPack's DLDeviceType codes (dlpack.h) -> needle device names.
_NEEDLE_DEVICE = {1: "cpu", 2: "cuda"}
_DLPACK_NAMES = {1: "CPU", 2: "CUDA", 3: "CUDA host (pinned)", 4: "OpenCL", 7: "Vulkan",
                 8: "Metal", 9: "VPI", 10: "ROCm", 11: "ROCm host", 12: "ext_dev",
                 13: "CUDA managed", 14: "oneAPI", 15: "WebGPU", 16: "Hexagon"}


def from_dlpack(x: Any, requires_grad: bool = False) -> Tensor:
    """A Tensor sharing ``x``'s memory (no copy), on the device ``x`` lives on.

    ``x`` is anything with ``__dlpack__`` and ``__dlpack_device__``: a
    ``torch.Tensor``, ``jax.Array``, ``cupy.ndarray``, ``numpy.ndarray`` or a
    needle Tensor. CPU memory becomes a ``cpu`` Tensor, CUDA memory a ``cuda``
    one (the CUDA backend must be installed). The result is a leaf with no history.

    Args:
        x: the array to wrap.
        requires_grad (bool, optional): whether the new leaf records gradients.
            Default: ``False`` (PyTorch's).

    Example:
        >>> import numpy as np, needle as ndl
        >>> a = np.arange(3.0)
        >>> t = ndl.from_dlpack(a)
        >>> a[0] = 7.0
        >>> t.numpy().tolist()
        [7.0, 1.0, 2.0]
    """
    if isinstance(x, Tensor):
        return Tensor.make_const(x._array, requires_grad, x.device)
    if not (hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__")):
        raise TypeError(f"from_dlpack: a {type(x).__module__}.{type(x).__name__} does not "
                        f"support DLPack (no __dlpack__/__dlpack_device__); pass a "
                        f"torch.Tensor, jax.Array, cupy.ndarray or numpy.ndarray")
    kind, index = (int(v) for v in x.__dlpack_device__())
    dev = _needle_device(kind, index)
    try:
        data = dev.backend.from_dlpack(x)
    except NotImplementedError as exc:
        raise NeedleError(f"from_dlpack: needle's {dev.name!r} backend cannot import "
                          f"DLPack arrays ({exc})") from None
    except (BufferError, TypeError, RuntimeError, ValueError) as exc:
        raise NeedleError(f"from_dlpack: cannot import the {type(x).__name__} "
                          f"(dtype {getattr(x, 'dtype', '?')}) without a copy: {exc}. NumPy "
                          f"dtypes only (bool, integers, float16/32/64, complex): convert "
                          f"bfloat16 and the like first") from exc
    return Tensor.make_const(data, requires_grad, dev)


def _needle_device(kind: int, index: int) -> Device:
    name = _NEEDLE_DEVICE.get(kind)
    if name is None:
        label = _DLPACK_NAMES.get(kind, "unknown")
        raise NeedleError(f"from_dlpack: the array lives on DLPack device type {kind} ({label}), "
                          f"which no needle backend holds (needle has 'cpu' and 'cuda'); "
                          f"copy it to the CPU first")
    return _as_device(name)


def dlpack_capsule(t: Tensor, stream: Any = None, max_version: Any = None,
                   dl_device: Any = None, copy: bool | None = None) -> Any:
    """``t``'s DLPack capsule (``Tensor.__dlpack__``): the backend array exports itself.

    A read-only array (a broadcast view, or memory imported read-only) cannot be
    exported to older consumers; unless ``copy=False`` it is exported as a copy then,
    which the array API allows when ``copy`` is None.
    """
    data = t._array
    kwargs = {k: v for k, v in (("stream", stream), ("max_version", max_version),
                                ("dl_device", dl_device), ("copy", copy)) if v is not None}
    try:
        return _export(data, kwargs)
    except BufferError:
        if copy is False:
            raise
        return _export(t.device.backend.copy(data), kwargs)


def _export(data: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return data.__dlpack__(**kwargs)
    except TypeError:
        if set(kwargs) <= {"stream"}:
            raise
        # an older array library: only ``stream`` is understood
        return data.__dlpack__(**{k: v for k, v in kwargs.items() if k == "stream"})


def dlpack_device(t: Tensor) -> tuple[int, int]:
    """``(device type, device id)`` of ``t``'s memory (``Tensor.__dlpack_device__``)."""
    kind, index = t._array.__dlpack_device__()
    return int(kind), int(index)
