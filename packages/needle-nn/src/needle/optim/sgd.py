"""Stochastic gradient descent with the course's momentum (an exponential average)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import Optimizer, check_range


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
        fused (bool, optional): the update path, as in PyTorch. ``True``: every
            parameter in one flat buffer, one kernel call per step (all on one device, of
            one dtype, each with a gradient); ``False``: one parameter at a time;
            ``None``: the flat buffer whenever it can run. The numbers are the same.
            Default: ``None``.

    Examples:
        >>> import needle.nn as nn, needle.optim as optim
        >>> model = nn.Linear(3, 2)
        >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    """

    hyper_names = ("lr", "momentum", "weight_decay")
    state_arrays = ("velocity",)

    def __init__(self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0, *, fused: bool | None = None) -> None:
        self.validate(lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params, fused=fused, lr=lr, momentum=momentum,
                         weight_decay=weight_decay)

    @classmethod
    def validate(cls, lr: float, momentum: float, weight_decay: float) -> None:
        check_range(cls.__name__, "lr", lr, 0.0)
        # momentum 1 would freeze u at zero: the parameters would never move.
        check_range(cls.__name__, "momentum", momentum, 0.0, 1.0, high_open=True)
        check_range(cls.__name__, "weight_decay", weight_decay, 0.0)

    def step(self) -> None:
        runs = self._hyper_runs()
        fused = self._flat_arrays(("velocity",) if any(h["momentum"] for h, _, _ in runs) else ())
        if fused is not None:
            flat, grad = fused
            velocity = flat.state.get("velocity")
            for h, first, end in runs:
                flat.backend.sgd_update(flat.window(flat.params, first, end),
                                        flat.window(grad, first, end),
                                        flat.window(velocity, first, end),
                                        h["lr"], h["momentum"], h["weight_decay"])
            return
        for i, p, h, data, grad in self._each_parameter():
            entry = self.state.get(i)
            try:
                velocity = p.device.backend.sgd_update(
                    data, grad, entry["velocity"] if entry else None, h["lr"], h["momentum"],
                    h["weight_decay"])
            except Exception as exc:
                raise self._update_failed(i, p, exc) from exc
            if velocity is not None and entry is None:
                self.state[i] = {"velocity": velocity}
