"""Learning-rate schedules: small callables mapping an epoch to a learning rate.

``schedule(epoch)`` is the closed-form rate (no state, no drift); ``step()``
advances the epoch and writes the rate into ``optimizer.lr``. Call ``step()``
once per epoch after the optimizer's steps, as in PyTorch. A parameter group with
its own ``"lr"`` follows the same schedule from that rate (PyTorch's per-group
``base_lrs``).
"""

from __future__ import annotations

import math
from typing import Any

from .optimizer import Optimizer, check_range


class LRScheduler:
    """Base: remembers the optimizer's initial ``lr`` as ``base_lr``."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__} needs an optimizer with an 'lr' attribute, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr: float = optimizer.lr
        self.group_base_lrs: dict[int, float] = {
            g: group["lr"] for g, group in enumerate(getattr(optimizer, "param_groups", ()))
            if "lr" in group}
        self.last_epoch = 0

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        """Advance one epoch, set and return the optimizer's new learning rate."""
        self.last_epoch += 1
        self._apply(self.last_epoch)
        return self.optimizer.lr

    def _apply(self, epoch: int) -> None:
        """Write the rate at ``epoch`` into the optimizer and into groups with their own lr."""
        self.optimizer.lr = self(epoch)
        base = self.base_lr
        try:
            for g, group_base in self.group_base_lrs.items():
                self.base_lr = group_base  # the closed form, from the group's own start
                self.optimizer.param_groups[g]["lr"] = self(epoch)
        finally:
            self.base_lr = base

    def get_last_lr(self) -> float:
        return self(self.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"base_lr": self.base_lr, "last_epoch": self.last_epoch}
        if self.group_base_lrs:
            state["group_base_lrs"] = dict(self.group_base_lrs)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_range(type(self).__name__, "base_lr", state.get("base_lr"), 0.0)
        epoch = state.get("last_epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"{type(self).__name__}: invalid last_epoch: {epoch!r}")
        groups = state.get("group_base_lrs", {})
        if not isinstance(groups, dict) or set(groups) != set(self.group_base_lrs):
            raise ValueError(f"{type(self).__name__}: group_base_lrs {groups!r:.60} does not "
                             f"match the optimizer's groups with their own lr "
                             f"{sorted(self.group_base_lrs)}")
        for lr in groups.values():
            check_range(type(self).__name__, "group base_lr", lr, 0.0)
        self.base_lr, self.last_epoch = state["base_lr"], epoch
        self.group_base_lrs = dict(groups)
        self._apply(epoch)


class StepLR(LRScheduler):
    """Multiplies the learning rate by ``gamma`` every ``step_size`` epochs.

    ``lr = base_lr · gamma ** (epoch // step_size)``, with ``base_lr`` the optimizer's
    ``lr`` when the schedule was made.

    Args:
        optimizer (Optimizer): the optimizer whose ``lr`` is set by ``step()``.
        step_size (int): epochs between two decays, at least 1.
        gamma (float): the factor of each decay. Default: ``0.1``.

    Examples:
        >>> opt = ndl.optim.SGD(ndl.nn.Linear(2, 2).parameters(), lr=1.0)
        >>> schedule = ndl.optim.StepLR(opt, step_size=2, gamma=0.5)
        >>> [schedule.step() for _ in range(4)]
        [1.0, 0.5, 0.5, 0.25]
        >>> opt.lr
        0.25
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: invalid step_size: {step_size!r} (must be an int >= 1)")
        check_range("StepLR", "gamma", gamma, 0.0)
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def __call__(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Anneals the learning rate along half a cosine, from ``base_lr`` to ``eta_min``.

    ``lr = eta_min + (base_lr - eta_min) · (1 + cos(π · epoch / T_max)) / 2``. It reaches
    ``eta_min`` at ``T_max`` and, as in PyTorch, rises again after it (a cosine period of
    ``2 · T_max``); restart or stop at ``T_max`` if that is unwanted.

    Args:
        optimizer (Optimizer): the optimizer whose ``lr`` is set by ``step()``.
        T_max (int): the epoch at which the rate reaches ``eta_min``, at least 1.
        eta_min (float): the lowest rate. Default: ``0.0``.

    Examples:
        >>> opt = ndl.optim.Adam(ndl.nn.Linear(2, 2).parameters(), lr=0.1)
        >>> schedule = ndl.optim.CosineAnnealingLR(opt, T_max=4)
        >>> [round(schedule.step(), 4) for _ in range(4)]
        [0.0854, 0.05, 0.0146, 0.0]
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: invalid T_max: {T_max!r} (must be an int >= 1)")
        check_range("CosineAnnealingLR", "eta_min", eta_min, 0.0)
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def __call__(self, epoch: int) -> float:
        cos = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * cos
