"""Adam with bias correction, as in the course and Kingma & Ba (2015)."""

from __future__ import annotations

from collections.abc import Iterable

from needle.autograd import Tensor

from .optimizer import Optimizer, check_range


class Adam(Optimizer):
    """Adam with bias correction, as in the course and Kingma & Ba (2015).

    ``g = grad + weight_decay · θ`` (L2, not AdamW's decoupled decay), then
    ``m = β1 · m + (1 - β1) · g``; ``v = β2 · v + (1 - β2) · g²``;
    ``θ = θ - lr · m̂ / (√v̂ + eps)`` with ``m̂ = m / (1 - β1^t)``, ``v̂ = v / (1 - β2^t)``.
    The step count ``t`` starts at 1 and is kept per parameter (PyTorch's rule), so a
    parameter whose ``grad`` is None on some steps is skipped without skewing its
    correction; when every parameter has a gradient each step this equals the course's
    single counter.

    Args:
        params (Iterable[Tensor]): the tensors to update, usually ``model.parameters()``.
        lr (float): the learning rate. Default: ``0.01``.
        beta1 (float): the decay of the first-moment average, in [0, 1). Default: ``0.9``.
        beta2 (float): the decay of the second-moment average, in [0, 1). Default: ``0.999``.
        eps (float): added to the denominator for stability. Default: ``1e-8``.
        weight_decay (float): the L2 penalty's factor. Default: ``0.0``.

    Examples:
        >>> w = ndl.nn.Parameter(ndl.Tensor([1.0, -2.0]))
        >>> opt = ndl.optim.Adam([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> opt.step()                         # the first step moves each weight by lr
        >>> w.numpy().round(4)
        array([ 0.9, -1.9], dtype=float32)
    """

    hyper_names = ("lr", "beta1", "beta2", "eps", "weight_decay")
    state_arrays = ("m", "v")
    state_ints = ("step",)

    def __init__(self, params: Iterable[Tensor], lr: float = 0.01, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.validate(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
        super().__init__(params)
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.eps, self.weight_decay = eps, weight_decay

    @classmethod
    def validate(cls, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float) -> None:
        name = cls.__name__
        check_range(name, "lr", lr, 0.0)
        check_range(name, "beta1", beta1, 0.0, 1.0, high_open=True)
        check_range(name, "beta2", beta2, 0.0, 1.0, high_open=True)
        check_range(name, "eps", eps, 0.0)
        check_range(name, "weight_decay", weight_decay, 0.0)

    def step(self) -> None:
        fused = self._flat_arrays(("m", "v"))
        if fused is not None:
            flat, grad = fused
            step = self.state[0]["step"] + 1
            for entry in self.state.values():
                entry["step"] = step
            flat.backend.adam_update(flat.params, grad, flat.state["m"], flat.state["v"],
                                     self.lr, self.beta1, self.beta2, self.eps,
                                     self.weight_decay, step)
            return
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            data, grad = self._arrays(i, p)
            entry = self.state.get(i)
            if entry is None:
                backend = p.device.backend
                entry = self.state[i] = {"step": 0, "m": backend.full(data.shape, 0.0, data.dtype),
                                         "v": backend.full(data.shape, 0.0, data.dtype)}
            entry["step"] += 1
            try:
                p.device.backend.adam_update(data, grad, entry["m"], entry["v"], self.lr, self.beta1,
                                             self.beta2, self.eps, self.weight_decay, entry["step"])
            except Exception as exc:
                entry["step"] -= 1
                raise self._update_failed(i, p, exc) from exc
