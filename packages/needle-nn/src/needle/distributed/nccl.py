"""NCCL through CuPy for ``cuda`` arrays: GPU-to-GPU collectives, MPI only to share the id.

Used when CuPy ships its NCCL bindings (``cupy.cuda.nccl``) and the world has more
than one rank; otherwise collectives on ``cuda`` arrays go through host copies and
MPI (``collectives.route``). ``NEEDLE_NCCL=0`` forces the host copies. Each rank
should own one GPU: launch with one rank per GPU and let ``init_cuda_device()``
(or ``CUDA_VISIBLE_DEVICES``) pick it before the first ``cuda`` tensor is made.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any

import numpy as np

from .world import World

# world -> its NcclCommunicator, or None where NCCL cannot run
_comms: weakref.WeakKeyDictionary[World, Any] = weakref.WeakKeyDictionary()


def _nccl() -> Any:
    """CuPy's NCCL module, or ``None``; never imports CuPy if nothing else has."""
    if "cupy" not in sys.modules:
        return None
    try:
        from cupy.cuda import nccl
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) else None


def communicator(world: World) -> Any:
    """The world's NCCL communicator (made once, collectively), or ``None``."""
    if world not in _comms:
        nccl = _nccl() if world.size > 1 else None
        # Every rank must take the same decision, or some would wait in MPI forever.
        usable = np.array([0 if nccl is None else 1], np.int64)
        world.allreduce(usable, "min")
        comm = None
        if usable[0]:
            uid = np.array(nccl.get_unique_id() if world.rank == 0 else [0] * 128, np.int64)
            world.bcast(uid, 0)
            comm = nccl.NcclCommunicator(world.size, tuple(int(b) for b in uid), world.rank)
        _comms[world] = comm
    return _comms[world]


def init_cuda_device(world: World) -> int:
    """Make GPU ``local_rank % GPUs`` current for this rank (ranks on one node share them)."""
    import cupy

    index = world.local_rank % cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(index).use()
    return index


def _args(a: Any) -> tuple[int, int, int]:
    """(pointer, count, NCCL dtype) of a contiguous CuPy array."""
    nccl = _nccl()
    codes = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
             "float64": nccl.NCCL_FLOAT64, "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64,
             "uint8": nccl.NCCL_UINT8}
    if str(a.dtype) not in codes:
        raise TypeError(f"NCCL cannot reduce {a.dtype} arrays ({', '.join(codes)} only)")
    return a.data.ptr, a.size, codes[str(a.dtype)]


def all_reduce(world: World, a: Any, op: str) -> Any:
    """Reduce the contiguous CuPy array ``a`` in place over every rank; returns it."""
    import cupy

    nccl = _nccl()
    ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}
    ptr, count, dtype = _args(a)
    stream = cupy.cuda.get_current_stream()
    communicator(world).allReduce(ptr, ptr, count, dtype, ops[op], stream.ptr)
    return a


def broadcast(world: World, a: Any, root: int) -> Any:
    """Overwrite the contiguous CuPy array ``a`` with root's; returns it."""
    import cupy

    ptr, count, dtype = _args(a)
    stream = cupy.cuda.get_current_stream()
    communicator(world).bcast(ptr, count, dtype, root, stream.ptr)
    return a
