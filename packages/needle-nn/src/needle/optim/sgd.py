"""Stochastic gradient descent with the course's momentum (an exponential average)."""

from __future__ import annotations

from collections.abc import Iterable

from needle.autograd import Tensor

from .optimizer import Optimizer, check_range


class SGD(Optimizer):
    """Stochastic gradient descent with the course's momentum (an exponential average).

    ``g = grad + weight_decay · θ``; ``u = momentum · u + (1 - momentum) · g``;
    ``θ = θ - lr · u``. This is the course's rule: the velocity ``u`` is an *average* of
    gradients (PyTorch's SGD sums them instead, so the same ``lr`` moves (1 - momentum)×
    as far here). ``u`` starts at zero. Parameters whose ``grad`` is None are skipped.

    Args:
        params (Iterable[Tensor]): the tensors to update, usually ``model.parameters()``.
        lr (float): the learning rate. Default: ``0.01``.
        momentum (float): the averaging factor of the velocity, in [0, 1). Default: ``0.0``.
        weight_decay (float): the L2 penalty's factor. Default: ``0.0``.

    Examples:
        >>> w = ndl.nn.Parameter(ndl.Tensor([1.0, -2.0]))
        >>> opt = ndl.optim.SGD([w], lr=0.1)
        >>> (w * w).sum().backward()          # grad = 2w
        >>> opt.step()
        >>> w.numpy().round(4)
        array([ 0.8, -1.6], dtype=float32)
    """

    hyper_names = ("lr", "momentum", "weight_decay")
    state_arrays = ("velocity",)

    def __init__(self, params: Iterable[Tensor], lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        self.validate(lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay

    @classmethod
    def validate(cls, lr: float, momentum: float, weight_decay: float) -> None:
        check_range(cls.__name__, "lr", lr, 0.0)
        # momentum 1 would freeze u at zero: the parameters would never move.
        check_range(cls.__name__, "momentum", momentum, 0.0, 1.0, high_open=True)
        check_range(cls.__name__, "weight_decay", weight_decay, 0.0)

    def step(self) -> None:
        lr, momentum, wd = self.lr, self.momentum, self.weight_decay
        fused = self._flat_arrays(("velocity",) if momentum else ())
        if fused is not None:
            flat, grad = fused
            flat.backend.sgd_update(flat.params, grad, flat.state.get("velocity"), lr,
                                    momentum, wd)
            return
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            data, grad = self._arrays(i, p)
            entry = self.state.get(i)
            try:
                velocity = p.device.backend.sgd_update(
                    data, grad, entry["velocity"] if entry else None, lr, momentum, wd)
            except Exception as exc:
                raise self._update_failed(i, p, exc) from exc
            if velocity is not None and entry is None:
                self.state[i] = {"velocity": velocity}
