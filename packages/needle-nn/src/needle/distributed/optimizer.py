"""``DistributedOptimizer``: average the gradients over every rank, then take the usual step."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from needle import Tensor

from .collectives import agree, reduce_array
from .world import DistributedError, World, current

_OWN = ("optimizer", "world", "_groups", "_averaged")


class DistributedOptimizer:
    """Wraps any needle optimizer; ``step()`` first replaces every ``.grad`` by its mean
    over the ranks, so N ranks with batch B each take the step of one process with
    batch N·B (for models whose forward pass does not depend on the batch: without
    BatchNorm in training mode or Dropout).

    All gradients of one device and dtype travel in one buffer and one ``Allreduce``,
    with a presence flag per parameter appended: a parameter that got no gradient on
    some rank counts as zero there, and one that got none on any rank keeps
    ``grad = None`` (the optimizer skips it). The first step also checks that every
    rank holds the same parameters (shapes, dtypes and values) and raises otherwise:
    call ``broadcast_parameters(model)`` before training.

    To work on the averaged gradients before the step (clipping their norm, as one
    process with the whole batch would), call ``average_gradients()`` first: the
    next ``step()`` then does not average again.

    Everything else (``lr``, ``state_dict``, ...) is the wrapped optimizer's, so
    schedules and checkpoints work unchanged.
    """

    def __init__(self, optimizer: Any, world: World | None = None) -> None:
        if isinstance(optimizer, DistributedOptimizer):
            raise TypeError("DistributedOptimizer: this optimizer is already distributed")
        if not callable(getattr(optimizer, "step", None)) or not hasattr(optimizer, "params"):
            raise TypeError(f"DistributedOptimizer wraps a needle optimizer (with params and "
                            f"step()), got {type(optimizer).__name__}")
        object.__setattr__(self, "optimizer", optimizer)
        object.__setattr__(self, "world", world or current())
        object.__setattr__(self, "_groups", None)
        object.__setattr__(self, "_averaged", False)

    def __getattr__(self, name: str) -> Any:
        if name in _OWN:  # not set yet (a copy being built): never recurse
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.optimizer, name, value)  # a schedule setting lr, for example

    def __repr__(self) -> str:
        return f"DistributedOptimizer({type(self.optimizer).__name__}, {self.world})"

    def step(self) -> None:
        if not self._averaged:
            self.average_gradients()
        self._averaged = False
        self.optimizer.step()

    def reset_grad(self) -> None:
        self._averaged = False
        self.optimizer.reset_grad()

    zero_grad = reset_grad

    def average_gradients(self) -> None:
        """Replace each parameter's ``.grad`` by its mean over every rank (once a step)."""
        self._averaged = True
        if self.world.size == 1:
            return
        if self._groups is None:
            self._groups = self._check_and_group()
        for group in self._groups:
            self._average(group)

    def _average(self, params: list[Tensor]) -> None:
        first = params[0]
        bk, dtype = first.device.backend, first.dtype
        pieces = []
        for p in params:
            g = p.grad
            if g is None:
                pieces.append(bk.full(p.shape, 0.0, dtype))
            else:
                if g.device != p.device or g.shape != p.shape:
                    raise ValueError(f"DistributedOptimizer: a parameter of shape {p.shape} on "
                                     f"{p.device} has a grad of shape {g.shape} on {g.device}")
                a = g._array
                pieces.append(a if a.dtype == dtype else bk.astype(a, dtype))
        present = np.array([p.grad is not None for p in params], dtype)
        pieces.append(bk.array(present, dtype))
        flat = bk.concatenate(pieces, None)  # one copy, flattened
        flat = reduce_array(flat, bk, "mean", self.world, overwrite=True)
        counts = bk.to_numpy(bk.getitem(flat, slice(flat.shape[0] - len(params), None)))
        offset = 0
        for p, count in zip(params, counts):
            n = int(np.prod(p.shape))
            if count > 0:
                view = bk.reshape(bk.getitem(flat, slice(offset, offset + n)), p.shape)
                p.grad = Tensor.make_const(view, device=p.device)
            offset += n

    def _check_and_group(self) -> list[list[Tensor]]:
        """Parameters grouped by (device, dtype), after checking every rank has the same."""
        groups: dict[tuple[str, str], list[Tensor]] = {}
        digest = hashlib.sha256()
        for p in self.optimizer.params:
            groups.setdefault((str(p.device), str(p.dtype)), []).append(p)
            digest.update(np.ascontiguousarray(p.numpy()).tobytes())
        layout = [f"{p.dtype}{list(p.shape)}@{p.device}" for p in self.optimizer.params]
        agree(self.world, "DistributedOptimizer (parameter shapes, dtypes, devices)",
              f"{len(layout)} parameters: {', '.join(layout)}")
        try:
            agree(self.world, "DistributedOptimizer (initial parameter values)",
                  f"values sha256 {digest.hexdigest()[:12]}")
        except DistributedError as exc:
            raise DistributedError(f"{exc}: the ranks start from different weights; call "
                                   f"needle.distributed.broadcast_parameters(model) before "
                                   f"training") from None
        return list(groups.values())
