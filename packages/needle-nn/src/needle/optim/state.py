"""Where an optimizer keeps its per-parameter state: one flat buffer per device, dtype
and state name, of which each parameter's entry (``optimizer.state[i]["m"]``) is a view.

Why one layout for every path: the per-parameter path updates the views, the fused
path updates a window over consecutive parameters in one call, and both write the
same memory, so either can run on any step. Only the optimizer's own state lives in
these buffers (and the fused path's ``"values"`` scratch, a copy of the parameters
during a step); parameters keep their own arrays (nothing of theirs is aliased).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from needle.autograd import Tensor
from needle.device import Device

Array = Any  # a backend array
#: What a parameter's state is laid out for: its device, dtype and shape.
Key = tuple[Device, Any, tuple[int, ...]]


def key_of(p: Tensor) -> Key:
    a = p._array
    return p._device, a.dtype, a.shape


class Bucket:
    """The flat state buffers of every parameter of one device and dtype."""

    def __init__(self, device: Device, dtype: Any) -> None:
        self.device, self.dtype, self.backend = device, dtype, device.backend
        self.size = 0
        self.buffers: dict[str, Array] = {}

    def buffer(self, name: str) -> Array:
        """The flat buffer of state ``name``, made (zeros: every state starts at 0) on first use."""
        flat = self.buffers.get(name)
        if flat is None:
            flat = self.buffers[name] = self.backend.full((self.size,), 0.0, self.dtype)
        return flat

    def window(self, name: str, start: int, end: int) -> Array:
        """Elements ``start..end-1`` of state ``name`` (a view, flat)."""
        flat = self.buffer(name)
        if start == 0 and end == self.size:
            return flat
        return self.backend.getitem(flat, slice(start, end))


class StateLayout:
    """Each parameter's place in its bucket: ``slots[i] = (bucket, start, end)``."""

    def __init__(self, params: list[Tensor]) -> None:
        self.keys = [key_of(p) for p in params]
        self._views: dict[str, list[Array]] = {}
        buckets: dict[tuple[Device, Any], Bucket] = {}
        self.slots: list[tuple[Bucket, int, int]] = []
        for device, dtype, shape in self.keys:
            bucket = buckets.get((device, dtype))
            if bucket is None:
                bucket = buckets[(device, dtype)] = Bucket(device, dtype)
            n = int(np.prod(shape))
            self.slots.append((bucket, bucket.size, bucket.size + n))
            bucket.size += n

    def view(self, i: int, name: str) -> Array:
        """Parameter ``i``'s state ``name``, shaped like the parameter (a view)."""
        bucket, start, end = self.slots[i]
        return bucket.backend.reshape(bucket.window(name, start, end), self.keys[i][2])

    def views(self, name: str) -> list[Array]:
        """Every parameter's view of buffer ``name``, made once per layout (the fused path
        copies values into and out of its ``"values"`` scratch through these every step)."""
        views = self._views.get(name)
        if views is None:
            views = self._views[name] = [self.view(i, name) for i in range(len(self.keys))]
        return views

    def entry(self, i: int, names: tuple[str, ...]) -> dict[str, Array]:
        """A fresh state entry for parameter ``i``: views of the (zero) state ``names``."""
        return {name: self.view(i, name) for name in names}

    def adopt(self, i: int, entry: dict[str, Any], arrays: tuple[str, ...],
              source: Device, owner: str) -> None:
        """Copy ``entry``'s arrays (on ``source``) into parameter ``i``'s place and make
        ``entry`` hold the views: how state survives a re-layout or a load."""
        bucket, _, _ = self.slots[i]
        shape = self.keys[i][2]
        for name in arrays:
            if name not in entry:
                continue
            value = entry[name]
            if tuple(value.shape) != tuple(shape):
                raise ValueError(f"{owner}: parameter {i} now has shape {tuple(shape)} but its "
                                 f"optimizer state {name!r} has shape {tuple(value.shape)}; make "
                                 f"a new optimizer after changing a parameter's shape")
            if source != bucket.device:
                value = bucket.backend.array(source.backend.to_numpy(value), bucket.dtype)
            view = self.view(i, name)
            bucket.backend.setitem(view, ..., value)
            entry[name] = view
