"""Checkpoints: ``needle.save(obj, path)`` and ``needle.load(path, device=None)``.

``obj`` is a tree of dicts (str or int keys), lists and tuples whose leaves are
Tensors, NumPy arrays and scalars, Python numbers, strings, bools and ``None``:
model and optimizer state dicts, the epoch, the seed, a data loader's position.

**Why .npz plus a JSON manifest.** Loading must never run code, so pickle (and
``torch.save``'s format, which is pickle) is out. A ``.npz`` is a zip of ``.npy``
arrays that ``np.load(..., allow_pickle=False)`` reads as plain data; NumPy is
already needle's one dependency, while safetensors (an optional extra, chosen by a
``.safetensors`` suffix: ``needle/safetensors_file.py``) holds only flat tensor dicts.
The tree's shape, the Python scalars and, per array, its dtype, shape and
whether it was a Tensor (and its ``requires_grad``) live in a JSON document
stored as a ``uint8`` array member. The zip's CRC-32 over every member catches
corrupt bytes; truncation loses the zip directory. Either way ``load`` raises
:class:`CheckpointError` naming the file, never some other exception.

**Why writes are atomic.** ``save`` writes through ``needle.atomic.atomic_write``:
a fresh temporary next to ``path`` (``O_EXCL | O_NOFOLLOW``), flushed, ``fsync``\\ ed
and ``os.replace``\\ d over ``path``, so a crash or Ctrl-C mid-save leaves the previous
checkpoint intact; a symbolic link at ``path`` is refused, never followed.

**Why loading is bounded.** Every array's header is checked against the manifest
and against the bytes its member holds before anything is allocated, and the
members may not inflate to more than ``_MAX_INFLATION`` times the file's size, so
a small file cannot make ``load`` allocate gigabytes.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from typing import Any

import numpy as np

from .atomic import atomic_write
from .autograd import Tensor
from .device import Device, default_device
from .device import device as _as_device
from .safetensors_file import is_safetensors, load_safetensors, save_safetensors

__all__ = ["CheckpointError", "load", "save"]

FORMAT = "needle-checkpoint"
VERSION = 1
_MANIFEST = "needle_manifest"
_ARRAY_KINDS = "biufcSU"  # NumPy kinds .npy stores without pickle
_MAX_INFLATION = 64  # members may hold at most this many times the file's size

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt, truncated or not needle's."""


# -- save ------------------------------------------------------------------------------
def save(obj: Any, path: PathLike) -> None:
    """Write ``obj`` to ``path`` atomically (see the module docstring for the format).

    The object is checked completely before the disk is touched: an unsupported
    value raises ``TypeError`` naming where it sits in ``obj``. A Tensor that
    appears twice (tied weights) is stored once and loads as one Tensor.
    A path ending in ``.safetensors`` writes that format instead (a flat state_dict).
    """
    if is_safetensors(path):
        return save_safetensors(obj, path)
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    table: dict[str, dict[str, Any]] = {}
    root = _Encoder(arrays, table).encode(obj, "obj")
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "arrays": table, "root": root})
    members = {_MANIFEST: np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8), **arrays}

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in members.items():
                _write_array(zf, name, array)

    atomic_write(path, write)


def _write_array(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    """One ``.npy`` member, written as ``np.savez`` does (a seam for crash tests)."""
    with zf.open(name + ".npy", mode="w", force_zip64=True) as fid:
        np.lib.format.write_array(fid, array, allow_pickle=False)


class _Encoder:
    """Turns ``obj`` into a JSON-able tree; arrays go to ``arrays`` under keys a0, a1, ..."""

    def __init__(self, arrays: dict[str, np.ndarray], table: dict[str, dict[str, Any]]) -> None:
        self.arrays, self.table = arrays, table
        self.memo: dict[int, str] = {}

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, Tensor):
            return {"tensor": self.array(obj, obj.numpy(), where),
                    "requires_grad": bool(obj.requires_grad)}
        if isinstance(obj, np.ndarray):
            return {"ndarray": self.array(obj, obj, where)}
        if isinstance(obj, np.generic):
            return {"scalar": self.array(obj, np.asarray(obj), where)}
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise TypeError(f"needle.save: dict keys must be str or int; {where} has key "
                                    f"{key!r} of type {type(key).__name__}")
                items.append([key, self.encode(value, f"{where}[{key!r}]")])
            return {"dict": items}
        if isinstance(obj, (list, tuple)):
            kind = "list" if isinstance(obj, list) else "tuple"
            return {kind: [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        raise TypeError(f"needle.save: cannot store {where} of type {type(obj).__name__}; "
                        f"checkpoints hold Tensors, NumPy arrays, numbers, str, bool, None "
                        f"and dicts/lists/tuples of them")

    def array(self, owner: Any, array: np.ndarray, where: str) -> str:
        key = self.memo.get(id(owner))
        if key is not None:
            return key
        if array.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"needle.save: {where} has dtype {array.dtype}, which cannot be stored "
                            f"without pickle (numeric, bool and string dtypes only)")
        key = self.memo[id(owner)] = f"a{len(self.arrays)}"
        self.arrays[key] = array
        self.table[key] = {"dtype": array.dtype.str, "shape": list(array.shape)}
        return key


# -- load ------------------------------------------------------------------------------
def load(path: PathLike, device: Device | str | None = None) -> Any:
    """Read a checkpoint written by :func:`save`; Tensors come back on ``device``.

    ``device`` defaults to the default device. Any problem with the file (missing,
    unreadable, truncated, corrupt, not a needle checkpoint) raises
    :class:`CheckpointError` naming the file. A ``.safetensors`` path gives its dict
    of name -> Tensor.
    """
    if is_safetensors(path):
        return load_safetensors(path, device)
    path = os.fspath(path)
    dev = _as_device(device) if device is not None else default_device()
    tree = _read(path)
    tensors: dict[int, Tensor] = {}

    def build(node: Any) -> Any:
        if isinstance(node, _PendingTensor):
            t = tensors.get(id(node))
            if t is None:
                t = tensors[id(node)] = Tensor.make_const(
                    dev.backend.array(node.array, node.array.dtype), node.requires_grad, dev)
            return t
        if isinstance(node, dict):
            return {k: build(v) for k, v in node.items()}
        if isinstance(node, list):
            return [build(v) for v in node]
        if isinstance(node, tuple):
            return tuple(build(v) for v in node)
        return node

    return build(tree)


class _PendingTensor:
    """A tensor leaf read from disk, made into a Tensor on the device after validation."""

    __slots__ = ("array", "requires_grad")

    def __init__(self, array: np.ndarray, requires_grad: bool) -> None:
        self.array, self.requires_grad = array, requires_grad


def _read(path: str) -> Any:
    """The decoded tree, with tensor leaves pending; every failure is a CheckpointError."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"PK":
                raise CheckpointError(f"{path}: not a needle checkpoint (not a zip/.npz file)")
            f.seek(0)
            on_disk = os.fstat(f.fileno()).st_size
            with zipfile.ZipFile(f) as zf:
                members = {info.filename: info for info in zf.infolist()}
                _check_inflation(path, on_disk, members.values())
                if _MANIFEST + ".npy" not in members:
                    raise CheckpointError(f"{path}: not a needle checkpoint (a zip/.npz file "
                                          f"without {_MANIFEST!r}; was it written by numpy.savez?)")
                raw = _read_member(path, zf, members[_MANIFEST + ".npy"], _MANIFEST, None)
                manifest = _parse_manifest(path, raw)
                arrays = _read_arrays(path, zf, members, manifest["arrays"])
        return _Decoder(path, arrays).decode(manifest["root"], 0)
    except CheckpointError:
        raise
    except Exception as exc:  # zipfile, NumPy, json, OSError...: all mean an unusable file
        raise CheckpointError(f"{path}: unreadable needle checkpoint, corrupt or truncated "
                              f"({type(exc).__name__}: {exc})") from exc


def _check_inflation(path: str, on_disk: int, members: Any) -> None:
    """``save`` stores members uncompressed, so their sizes add up to about the file's.

    zipfile never inflates a member past the size its directory entry states, so
    this bound, checked before anything is read, caps what loading can allocate.
    """
    total = sum(info.file_size for info in members)
    if total > _MAX_INFLATION * on_disk + (1 << 20):
        raise CheckpointError(f"{path}: its members inflate to {total:,} bytes, more than "
                              f"{_MAX_INFLATION}x its {on_disk:,} bytes on disk (needle writes "
                              f"checkpoints uncompressed): refusing what looks like a zip bomb")


def _parse_manifest(path: str, raw: np.ndarray) -> dict[str, Any]:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: corrupt checkpoint (manifest is {raw.dtype}{list(raw.shape)}, "
                              f"expected a 1-d uint8 array)")
    manifest = json.loads(raw.tobytes().decode("utf-8"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a needle checkpoint (manifest has no format {FORMAT!r})")
    version = manifest.get("version")
    if version != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r}; this needle reads "
                              f"version {VERSION} (upgrade needle-core to read newer checkpoints)")
    if not isinstance(manifest.get("arrays"), dict) or "root" not in manifest:
        raise CheckpointError(f"{path}: corrupt checkpoint (manifest lacks 'arrays' or 'root')")
    return manifest


def _read_arrays(path: str, zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo],
                 table: dict[str, Any]) -> dict[str, np.ndarray]:
    arrays = {}
    for key, spec in table.items():
        info = members.get(f"{key}.npy")
        if not isinstance(spec, dict) or info is None:
            raise CheckpointError(f"{path}: corrupt checkpoint (array {key!r} is missing)")
        arrays[key] = _read_member(path, zf, info, key, spec)
    return arrays


def _read_member(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str,
                 spec: dict[str, Any] | None) -> np.ndarray:
    """One ``.npy`` member, its header checked against the manifest (``spec``) and against
    the bytes the member holds *before* the array is allocated."""
    fmt = np.lib.format
    with zf.open(info) as fp:
        version = fmt.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise CheckpointError(f"{path}: corrupt checkpoint (array {key!r} has .npy version "
                                  f"{version})")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(fp)
        if spec is not None and (dtype.str != spec.get("dtype") or list(shape) != spec.get("shape")):
            raise CheckpointError(
                f"{path}: corrupt checkpoint (array {key!r} is {dtype.str}{list(shape)}, "
                f"the manifest says {spec.get('dtype')}{spec.get('shape')})")
        if dtype.kind not in _ARRAY_KINDS or any(n < 0 for n in shape):
            raise CheckpointError(f"{path}: corrupt checkpoint (array {key!r} is "
                                  f"{dtype.str}{list(shape)})")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if fp.tell() + nbytes != info.file_size:
            raise CheckpointError(f"{path}: corrupt checkpoint (array {key!r} declares shape "
                                  f"{list(shape)} of {dtype.str}, {nbytes:,} bytes, but its member "
                                  f"holds {info.file_size - fp.tell():,})")
        if nbytes == 0:
            return np.empty(shape, dtype)
        buf = bytearray(nbytes)
        view, got = memoryview(buf), 0
        while got < nbytes:
            n = fp.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                raise CheckpointError(f"{path}: truncated checkpoint (array {key!r} ends after "
                                      f"{got:,} of {nbytes:,} bytes)")
            got += n
    array = np.frombuffer(buf, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C")


class _Decoder:
    """Rebuilds the tree from the manifest, rejecting anything ``save`` cannot have written."""

    def __init__(self, path: str, arrays: dict[str, np.ndarray]) -> None:
        self.path, self.arrays = path, arrays
        self.pending: dict[str, _PendingTensor] = {}

    def bad(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: corrupt checkpoint (manifest {what})")

    def decode(self, node: Any, depth: int) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if depth > 500:
            raise self.bad("nests too deeply")
        if not isinstance(node, dict) or not node:
            raise self.bad(f"has an unexpected entry {node!r:.60}")
        tag = next(iter(node))
        body = node[tag]
        if tag == "dict" and len(node) == 1 and isinstance(body, list):
            out = {}
            for item in body:
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))
                        and not isinstance(item[0], bool) and item[0] not in out):
                    raise self.bad(f"has a bad dict entry {item!r:.60}")
                out[item[0]] = self.decode(item[1], depth + 1)
            return out
        if tag in ("list", "tuple") and len(node) == 1 and isinstance(body, list):
            items = [self.decode(v, depth + 1) for v in body]
            return items if tag == "list" else tuple(items)
        if tag == "ndarray" and len(node) == 1:
            return self.array(body)
        if tag == "scalar" and len(node) == 1 and self.array(body).ndim == 0:
            return self.array(body)[()]
        if tag == "tensor" and set(node) == {"tensor", "requires_grad"} \
                and isinstance(node["requires_grad"], bool):
            pending = self.pending.get(body)
            if pending is None:
                pending = self.pending[body] = _PendingTensor(self.array(body), node["requires_grad"])
            return pending
        raise self.bad(f"has an unknown entry {node!r:.60}")

    def array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise self.bad(f"refers to a missing array {key!r:.60}")
        return self.arrays[key]
