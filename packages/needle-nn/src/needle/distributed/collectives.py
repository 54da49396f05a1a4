"""Collectives on Tensors: ``all_reduce``, ``broadcast``, and the array-level routes they take.

A backend array reaches the wire by one of three routes (``route``):

* ``host``: NumPy arrays (the cpu backend) go to MPI as they are;
* ``nccl``: CuPy arrays go to NCCL when CuPy ships it (``nccl.py``), GPU to GPU;
* ``copy``: any other array is copied to the host, reduced by MPI, copied back.

Every rank must call a collective with the same shape and dtype. The Tensor-level
functions check that first (one tiny ``Allgather`` of a fingerprint) so a mismatch
is the same clear error on every rank instead of a hang or a truncated buffer.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
from needle import Tensor

from . import nccl
from .world import DistributedError, World, current

Array = Any
OPS = ("sum", "mean", "max", "min")


def route(backend: Any, world: World) -> str:
    """``host``, ``nccl`` or ``copy``: how this backend's arrays are reduced (see above)."""
    if np.ndarray in tuple(getattr(backend, "array_types", ())) and backend.name == "cpu":
        return "host"
    if backend.name == "cuda" and os.environ.get("NEEDLE_NCCL", "1") != "0" \
            and nccl.communicator(world) is not None:
        return "nccl"
    return "copy"


def reduce_array(a: Array, backend: Any, op: str = "sum", world: World | None = None,
                 overwrite: bool = False) -> Array:
    """A contiguous backend array: ``a`` reduced over every rank (``mean`` divides by N).

    ``overwrite=True`` lets it reduce ``a`` itself where it can (a fresh buffer the
    caller no longer needs) instead of a copy.
    """
    world = world or current()
    if world.size == 1:
        return a if overwrite else backend.copy(a)
    how = route(backend, world)
    wire = "sum" if op == "mean" else op
    if how == "nccl":
        out = nccl.all_reduce(world, a if overwrite else backend.copy(a), wire)
    else:
        src = a if how == "host" else backend.to_numpy(a)
        reuse = overwrite and isinstance(src, np.ndarray) and src.flags.c_contiguous \
            and src.flags.writeable
        host = src if reuse else np.array(src, order="C")
        world.allreduce(host, wire)
        out = host if how == "host" else backend.array(host, host.dtype)
    if op == "mean":
        scale = 1.0 / world.size
        if how == "host":
            out *= out.dtype.type(scale)
        else:
            out = backend.multiply(out, scale)
    return out


def bcast_array(a: Array, backend: Any, root: int = 0, world: World | None = None) -> Array:
    """A new contiguous backend array holding root's ``a`` on every rank."""
    world = world or current()
    if world.size == 1:
        return backend.copy(a)
    how = route(backend, world)
    if how == "nccl":
        return nccl.broadcast(world, backend.copy(a), root)
    host = np.array(a if how == "host" else backend.to_numpy(a), order="C")
    world.bcast(host, root)
    return host if how == "host" else backend.array(host, host.dtype)


def all_reduce(tensor: Tensor, op: str = "sum") -> Tensor:
    """``tensor`` summed (or averaged, max, min) over every rank, on the same device.

    The input is left unchanged and the result is a constant (no gradient flows
    through a collective). In a world of one it is a copy of ``tensor``.
    """
    _check_tensor("all_reduce", tensor)
    if op not in OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(OPS)}, got {op!r}")
    if op == "mean" and tensor.dtype.kind != "f":
        raise ValueError(f"all_reduce(op='mean') needs a floating-point tensor, got {tensor.dtype}"
                         f" (use op='sum' and divide, or astype('float32') first)")
    world = current()
    agree(world, "all_reduce", _signature(tensor, op))
    out = reduce_array(tensor._array, tensor.device.backend, op, world)
    return Tensor.make_const(out, device=tensor.device)


def broadcast(tensor: Tensor, root: int = 0) -> Tensor:
    """Rank ``root``'s ``tensor`` on every rank (a new constant Tensor, same device)."""
    _check_tensor("broadcast", tensor)
    world = current()
    check_root("broadcast", root, world)
    agree(world, "broadcast", _signature(tensor, root))
    out = bcast_array(tensor._array, tensor.device.backend, root, world)
    return Tensor.make_const(out, device=tensor.device)


def broadcast_object(value: Any, root: int = 0) -> Any:
    """A JSON-able ``value`` from ``root`` on every rank (JSON on the wire, never pickle)."""
    world = current()
    check_root("broadcast_object", root, world)
    if world.size == 1:
        return value
    data = np.frombuffer(json.dumps(value).encode(), np.uint8) if world.rank == root \
        else np.empty(0, np.uint8)
    length = np.array([data.size], np.int64)
    world.bcast(length, root)
    buf = np.array(data, np.uint8) if world.rank == root else np.empty(int(length[0]), np.uint8)
    world.bcast(buf, root)
    return json.loads(buf.tobytes().decode())


def agree(world: World, what: str, signature: str) -> None:
    """Raise the same ``DistributedError`` on every rank unless all pass the same signature."""
    if world.size == 1:
        return
    digest = np.frombuffer(hashlib.sha256(signature.encode()).digest()[:8], np.int64)
    if (world.allgather(digest) == digest).all():
        return
    # Rare path: exchange the signatures themselves (padded) to name the difference.
    raw = signature.encode()[:200].ljust(200)
    every = world.allgather(np.frombuffer(raw, np.uint8).copy())
    listed = "; ".join(f"rank {r}: {bytes(row).decode(errors='replace').strip()}"
                       for r, row in enumerate(every))
    raise DistributedError(f"{what}: the ranks passed different data ({listed})")


def check_root(what: str, root: int, world: World) -> None:
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) \
            or not 0 <= root < world.size:
        raise ValueError(f"{what}: root must be a rank in [0, {world.size}), got {root!r}")


def _check_tensor(what: str, tensor: Any) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what} takes a needle Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind not in "fiu":
        raise ValueError(f"{what}: cannot reduce a {tensor.dtype} tensor (numbers only)")


def _signature(tensor: Tensor, extra: Any) -> str:
    return f"{tensor.dtype}{list(tensor.shape)} on {tensor.device}, {extra}"
