"""``broadcast_parameters``: every rank starts from the same weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from .collectives import agree, bcast_array, check_root
from .world import current


def broadcast_parameters(module: Any, root: int = 0) -> None:
    """Copy rank ``root``'s parameters and buffers (BatchNorm's running statistics)
    into ``module`` on every rank, in place.

    Tensors of one device and dtype travel in one ``Bcast``. Every rank must hold
    the same architecture; a difference in names, shapes or dtypes raises the same
    ``DistributedError`` on every rank.
    """
    if not hasattr(module, "named_parameters") or not hasattr(module, "named_buffers"):
        raise TypeError(f"broadcast_parameters takes a needle.nn.Module, got "
                        f"{type(module).__name__}")
    world = current()
    check_root("broadcast_parameters", root, world)
    named = list(module.named_parameters()) + list(module.named_buffers())
    agree(world, "broadcast_parameters",
          ", ".join(f"{n}:{t.dtype}{list(t.shape)}@{t.device}" for n, t in named))
    if world.size == 1:
        return
    groups: dict[tuple[str, str], list[Any]] = {}
    for _, t in named:
        groups.setdefault((str(t.device), str(t.dtype)), []).append(t)
    for tensors in groups.values():
        bk = tensors[0].device.backend
        flat = bk.concatenate([t._array for t in tensors], None)
        flat = bcast_array(flat, bk, root, world)
        offset = 0
        for t in tensors:
            n = int(np.prod(t.shape))
            _assign(t, bk, bk.reshape(bk.getitem(flat, slice(offset, offset + n)), t.shape))
            offset += n


def _assign(t: Any, bk: Any, value: Any) -> None:
    """Write ``value`` into ``t``'s array in place (optimizers and layers keep views of it);
    replace the array only where it cannot be written."""
    data = t._array
    flags = getattr(data, "flags", None)
    if (flags is not None and not getattr(flags, "writeable", True)) \
            or 0 in getattr(data, "strides", ()):
        t._array = bk.copy(value)
    else:
        bk.setitem(data, Ellipsis, value)
