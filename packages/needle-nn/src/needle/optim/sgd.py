"""Stochastic gradient descent with the course's momentum (an exponential average)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import Array, Optimizer, check_range


class SGD(Optimizer):
    """Stochastic gradient descent with the course's momentum.

    .. math::

        g = \\nabla_\\theta + \\lambda\\theta,\\quad u \\leftarrow \\mu u + (1-\\mu) g,
        \\quad \\theta \\leftarrow \\theta - \\eta u

    This is the course's rule: the velocity ``u`` is an *average* of gradients
    (PyTorch's SGD sums them instead, so the same ``lr`` moves (1-momentum)× as far
    here). ``u`` starts at zero. Parameters whose ``grad`` is None are skipped.

    Args:
        params (Iterable): Tensors, ``(name, Tensor)`` pairs or parameter groups
            (dicts with ``"params"`` and any of the keyword arguments below).
        lr (float, optional): learning rate η. Default: ``0.01``.
        momentum (float, optional): μ in [0, 1). Default: ``0.0``.
        weight_decay (float, optional): L2 penalty λ. Default: ``0.0``.
        foreach (bool, optional): ``False``: update one parameter at a time.
            Default: ``None`` (the fused path).
        fused (bool, optional): ``True``: concatenate the parameters and update them in
            one kernel call (see :class:`~needle.optim.Optimizer`). Default: ``None`` (``True``).

    Examples:
        >>> import needle.nn as nn, needle.optim as optim
        >>> model = nn.Linear(3, 2)
        >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    """

    hyper_names = ("lr", "momentum", "weight_decay")
    state_arrays = ("velocity",)

    def __init__(self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0, *, foreach: bool | None = None,
                 fused: bool | None = None) -> None:
        self.validate(lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params, foreach=foreach, fused=fused, lr=lr, momentum=momentum,
                         weight_decay=weight_decay)

    @classmethod
    def validate(cls, lr: float, momentum: float, weight_decay: float) -> None:
        check_range(cls.__name__, "lr", lr, 0.0)
        # momentum 1 would freeze u at zero: the parameters would never move.
        check_range(cls.__name__, "momentum", momentum, 0.0, 1.0, high_open=True)
        check_range(cls.__name__, "weight_decay", weight_decay, 0.0)

    def _state_names(self, hyper: dict[str, Any]) -> tuple[str, ...]:
        return self.state_arrays if hyper["momentum"] else ()

    def _update(self, backend: Any, param: Array, grad: Array, state: dict[str, Array],
                hyper: dict[str, Any], step: int) -> None:
        backend.sgd_update(param, grad, state.get("velocity"), hyper["lr"], hyper["momentum"],
                           hyper["weight_decay"])
