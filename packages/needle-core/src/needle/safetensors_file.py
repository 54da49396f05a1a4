"""``needle.save``/``needle.load`` for ``.safetensors`` files (Hugging Face's format).

A ``.safetensors`` file is an 8-byte header length, a JSON table (name -> dtype,
shape, byte range) and the raw bytes: no code, and the ``safetensors`` package
checks every range against the file's size before reading, so loading neither
runs code nor allocates more than the file holds. It stores a flat mapping of
names to arrays only, which is exactly a ``state_dict``, and PyTorch, JAX and the
Hugging Face hub read it: that is what it is for. Whole training checkpoints
(optimizer state, epoch, nested dicts) stay in needle's ``.npz`` format.

The ``safetensors`` package is an optional extra: ``pip install 'needle-core[safetensors]'``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np

from .autograd import Tensor
from .device import Device, default_device
from .device import device as _as_device

SUFFIX = ".safetensors"
_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what safetensors stores


def is_safetensors(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(SUFFIX)


def _module(what: str) -> Any:
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError(f"{what} needs the 'safetensors' package: "
                          f"pip install 'needle-core[safetensors]'") from None
    return safetensors


def save_safetensors(obj: Any, path: str | os.PathLike) -> None:
    """Write a mapping of names to Tensors or NumPy arrays (a ``state_dict``) atomically.

    Everything is checked before the disk is touched; anything else raises
    ``TypeError`` naming the entry.
    """
    path = os.fspath(path)
    st = _module(f"needle.save({path!r})")
    if not isinstance(obj, Mapping):
        raise TypeError(f"needle.save({path!r}): a .safetensors file holds a flat dict of "
                        f"name -> Tensor (a state_dict), got {type(obj).__name__}; save other "
                        f"objects to a .npz checkpoint")
    arrays: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"needle.save({path!r}): .safetensors names must be str, got "
                            f"{key!r} ({type(key).__name__})")
        if isinstance(value, Tensor):
            array = value.numpy()
        elif isinstance(value, np.ndarray):
            array = value
        else:
            raise TypeError(f"needle.save({path!r}): entry {key!r} is a {type(value).__name__}; "
                            f".safetensors holds only Tensors and arrays (save other objects "
                            f"to a .npz checkpoint)")
        if array.dtype.kind not in _KINDS:
            raise TypeError(f"needle.save({path!r}): entry {key!r} has dtype {array.dtype}, "
                            f"which .safetensors cannot store (bool, integer, float only)")
        arrays[key] = np.ascontiguousarray(array)
    data = st.numpy.save(arrays, metadata={"format": "np", "producer": "needle"})
    _write_atomic(path, data)


def _write_atomic(path: str, data: bytes) -> None:
    """A temporary file beside ``path``, fsync'd, then renamed over it (see serialization.py)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save {path!r}: directory {directory!r} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_safetensors(path: str | os.PathLike, device: Device | str | None = None
                     ) -> dict[str, Tensor]:
    """The file's arrays as constant Tensors on ``device`` (default: the default device)."""
    from .serialization import CheckpointError

    path = os.fspath(path)
    st = _module(f"needle.load({path!r})")
    dev = _as_device(device) if device is not None else default_device()
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        # safe_open maps the file and reads one tensor at a time: no second copy in memory
        with st.safe_open(path, framework="numpy") as f:
            arrays = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc}") from exc
    except Exception as exc:  # safetensors' own error type differs between versions
        raise CheckpointError(f"{path}: not a valid .safetensors file ({exc})") from exc
    return {name: Tensor.make_const(dev.backend.array(a, a.dtype), False, dev)
            for name, a in arrays.items()}
