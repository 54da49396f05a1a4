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

**Why writes are atomic.** ``save`` writes a temporary file next to ``path``,
flushes and ``fsync``\\ s it, then ``os.replace``\\ s it over ``path``: a crash or
Ctrl-C mid-save leaves the previous checkpoint intact and removes the temporary.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from typing import Any

import numpy as np

from .autograd import Tensor
from .device import Device, default_device
from .device import device as _as_device
from .safetensors_file import is_safetensors, load_safetensors, save_safetensors

__all__ = ["CheckpointError", "load", "save"]

FORMAT = "needle-checkpoint"
VERSION = 1
_MANIFEST = "needle_manifest"
_ARRAY_KINDS = "biufcSU"  # NumPy kinds .npy stores without pickle

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

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save checkpoint {path!r}: "
                                f"directory {directory!r} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never follow or clobber someone else's file; 0o666 lets the umask decide.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, array in members.items():
                    _write_array(zf, name, array)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _write_array(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    """One ``.npy`` member, written as ``np.savez`` does (a seam for crash tests)."""
    with zf.open(name + ".npy", mode="w", force_zip64=True) as fid:
        np.lib.format.write_array(fid, array, allow_pickle=False)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
            npz = np.load(f, allow_pickle=False)
            with npz:
                if _MANIFEST not in npz.files:
                    raise CheckpointError(f"{path}: not a needle checkpoint (a zip/.npz file "
                                          f"without {_MANIFEST!r}; was it written by numpy.savez?)")
                manifest = _parse_manifest(path, npz[_MANIFEST])
                arrays = _read_arrays(path, npz, manifest["arrays"])
        return _Decoder(path, arrays).decode(manifest["root"], 0)
    except CheckpointError:
        raise
    except Exception as exc:  # zipfile, NumPy, json, OSError...: all mean an unusable file
        raise CheckpointError(f"{path}: unreadable needle checkpoint, corrupt or truncated "
                              f"({type(exc).__name__}: {exc})") from exc


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


def _read_arrays(path: str, npz: Any, table: dict[str, Any]) -> dict[str, np.ndarray]:
    arrays = {}
    for key, spec in table.items():
        if not isinstance(spec, dict) or key not in npz.files:
            raise CheckpointError(f"{path}: corrupt checkpoint (array {key!r} is missing)")
        array = npz[key]
        if array.dtype.str != spec.get("dtype") or list(array.shape) != spec.get("shape"):
            raise CheckpointError(
                f"{path}: corrupt checkpoint (array {key!r} is {array.dtype.str}{list(array.shape)}, "
                f"the manifest says {spec.get('dtype')}{spec.get('shape')})")
        arrays[key] = array
    return arrays


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
