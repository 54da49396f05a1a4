"""File readers that never run code and explain every way a file can be wrong.

* ``read_idx``: the idx format of MNIST (raw or gzip), checked against its header.
* ``read_pickle``: CIFAR-10's python-version batches are pickles, and unpickling
  can call any importable function. This reader accepts only the exact globals
  NumPy array reconstruction uses, so a crafted file fails instead of running code.

Neither allocates more than the file justifies: an idx header's shape is checked
against the bytes present (a gzip file may announce at most ``MAX_INFLATION``
times its compressed size), and a pickle cannot call ``numpy.ndarray`` itself
(whose ``strides=(0, ...)`` would turn a few bytes into gigabytes of views).
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import zlib
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, missing_file

_CHUNK = 1 << 22
#: Real idx files compress about 5:1 (MNIST images) or 2:1 (labels); a gzip file
#: announcing more than this many times its size is refused as a decompression bomb.
MAX_INFLATION = 64
_GZIP_MAGIC = b"\x1f\x8b"
#: idx type codes (third magic byte) and the big-endian dtypes they name.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_bytes(path: str | PathLike[str], what: str) -> bytes:
    """The whole file, or a ``DataError`` naming it when it is absent or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path, what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what}: {exc}") from exc


def read_idx(path: str | PathLike[str], magic: int | None = None) -> np.ndarray:
    """The array stored in an idx file (``.gz`` or raw), in native byte order.

    ``magic`` (e.g. ``0x803`` for MNIST images) rejects any other kind of idx file.
    The payload must match the header exactly: truncated files and trailing bytes
    are errors, and a gzip file is never inflated beyond what the header announces.
    """
    path = Path(path)
    raw = read_bytes(path, "an idx file")
    gzipped = raw[:2] == _GZIP_MAGIC
    stream: Any = gzip.GzipFile(fileobj=io.BytesIO(raw)) if gzipped else io.BytesIO(raw)
    budget = (MAX_INFLATION * len(raw), f"a gzip file of {len(raw):,} bytes may hold at most "
              f"{MAX_INFLATION}x that") if gzipped else (len(raw), f"the file has {len(raw):,} bytes")
    try:
        return _parse_idx(stream, path, magic, budget)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path}: not a valid gzip file ({exc})") from exc


def _parse_idx(stream: Any, path: Path, magic: int | None, budget: tuple[int, str]) -> np.ndarray:
    head = _read_at_most(stream, 4)
    if len(head) < 4:
        raise DataError(f"{path}: truncated idx header ({len(head)} of 4 magic bytes)")
    found = int.from_bytes(head, "big")
    if magic is not None and found != magic:
        raise DataError(f"{path}: wrong magic number 0x{found:08x}, expected 0x{magic:08x}")
    if head[:2] != b"\0\0" or head[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an idx file (magic number 0x{found:08x})")
    ndim = head[3]
    dims_raw = _read_at_most(stream, 4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DataError(f"{path}: truncated idx header ({ndim} dimensions announced)")
    shape = tuple(int.from_bytes(dims_raw[4 * i:4 * i + 4], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[head[2]])
    size = dtype.itemsize * math.prod(shape)
    if 4 + 4 * ndim + size > budget[0]:  # checked before reading: nothing is allocated for it
        raise DataError(f"{path}: truncated: the header announces shape {shape} "
                        f"({size:,} bytes of data), but {budget[1]}")
    payload = _read_at_most(stream, size)
    if len(payload) < size:
        raise DataError(f"{path}: truncated: the header announces shape {shape} ({size} bytes), "
                        f"but only {len(payload)} bytes follow it")
    if _read_at_most(stream, 1):
        raise DataError(f"{path}: unexpected bytes after the {size} bytes of data for shape {shape}")
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _read_at_most(stream: Any, n: int) -> bytearray:
    """Up to ``n`` bytes, in chunks: a lying header cannot make us allocate more than exists."""
    out = bytearray()
    while len(out) < n:
        chunk = stream.read(min(n - len(out), _CHUNK))
        if not chunk:
            break
        out += chunk
    return out


# -- restricted unpickling -------------------------------------------------------------------
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
_FROMBUFFER = np.ndarray.__reduce_ex__(np.zeros(1), 5)[0]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What ``_codecs.encode`` does in protocol-2 pickles of ``bytes``, for latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


class _NDArrayType:
    """What a pickle gets for ``numpy.ndarray``: usable only as ``_reconstruct``'s first argument.

    Calling ``numpy.ndarray(shape, dtype, buffer, offset, strides)`` directly is the
    way a 100-byte pickle declares 200,000 images (zero strides over one byte), so
    this stand-in cannot be called or instantiated at all.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("it calls numpy.ndarray directly, which can view a few "
                                     "bytes as gigabytes; NumPy's own pickles never do")

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NDArrayType()
#: ``_reconstruct`` makes the empty array that ``__setstate__`` then fills with
#: the bytes present (NumPy checks that they match); NumPy always passes shape (0,).
_MAX_EMPTY_SHAPE = 1


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError(f"_reconstruct of {subtype!r} is not allowed")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and 0 <= n for n in shape)
            and math.prod(shape) <= _MAX_EMPTY_SHAPE):
        raise pickle.UnpicklingError(f"_reconstruct with shape {shape!r:.60} (NumPy writes (0,))")
    return _RECONSTRUCT(np.ndarray, shape, dtype)


#: (module, name) -> object: the only globals a pickled NumPy array in a dict needs.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler (its memo is a dict, so a forged memo index cannot
    allocate gigabytes as the C one would) whose ``find_class`` is an allow-list."""

    def __init__(self, data: bytes, path: Path) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._path}: refusing to load the global {module}.{name}: data pickles may "
                f"only hold plain containers and NumPy arrays (anything else could run code)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def read_pickle(path: str | PathLike[str], what: str) -> Any:
    """Unpickle plain containers and NumPy arrays from ``path``; anything else is a ``DataError``."""
    path = Path(path)
    data = read_bytes(path, what)
    try:
        return _RestrictedUnpickler(data, path).load()
    except DataError:
        raise
    except Exception as exc:  # any failure of a corrupt stream becomes one clear error
        raise DataError(f"{path}: not a valid pickle of {what} ({type(exc).__name__}: {exc})") from exc
