"""Adam with bias correction (the course's, Kingma & Ba 2015) and AdamW (Loshchilov &
Hutter 2019: weight decay applied to the weights, not added to the gradient)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .optimizer import Array, Optimizer, check_range


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is an L2 term in the gradient.

    .. math::

        g &= \\nabla_\\theta + \\lambda\\theta \\\\
        m &\\leftarrow \\beta_1 m + (1-\\beta_1) g,\\quad
        v \\leftarrow \\beta_2 v + (1-\\beta_2) g^2 \\\\
        \\theta &\\leftarrow \\theta - \\eta\\, \\frac{m / (1-\\beta_1^t)}
        {\\sqrt{v / (1-\\beta_2^t)} + \\epsilon}

    The step count ``t`` starts at 1 and is kept per parameter (PyTorch's rule), so a
    parameter whose ``grad`` is None on some steps is skipped without skewing its
    correction; when every parameter has a gradient each step this equals the
    course's single counter. For decoupled decay use :class:`AdamW`.

    Args:
        params (Iterable): Tensors, ``(name, Tensor)`` pairs or parameter groups
            (dicts with ``"params"`` and any of the keyword arguments below).
        lr (float, optional): learning rate η. Default: ``0.01`` (the course's).
        beta1 (float, optional): β1, the decay of m. Default: ``0.9``.
        beta2 (float, optional): β2, the decay of v. Default: ``0.999``.
        eps (float, optional): ε. Default: ``1e-8``.
        weight_decay (float, optional): L2 penalty λ. Default: ``0.0``.
        betas (tuple[float, float], optional): ``(β1, β2)`` in PyTorch's spelling,
            instead of ``beta1``/``beta2``. Default: ``None``.
        fused (bool, optional): the update path, as in PyTorch: ``True`` every
            parameter in one flat buffer (one device, one dtype, every gradient present),
            ``False`` one parameter at a time, ``None`` the flat buffer whenever it can
            run. The numbers are the same. Default: ``None``.

    Examples:
        >>> import needle.nn as nn, needle.optim as optim
        >>> model = nn.Linear(3, 2)
        >>> opt = optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
        >>> opt.betas
        (0.9, 0.98)
    """

    hyper_names = ("lr", "beta1", "beta2", "eps", "weight_decay")
    hyper_aliases = {"betas": ("beta1", "beta2")}
    state_arrays = ("m", "v")
    state_ints = ("step",)

    def __init__(self, params: Iterable[Any], lr: float = 0.01, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0, *,
                 betas: tuple[float, float] | None = None, fused: bool | None = None) -> None:
        beta1, beta2 = _betas(type(self).__name__, beta1, beta2, betas)
        self.validate(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
        super().__init__(params, fused=fused, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                         weight_decay=weight_decay)

    @property
    def betas(self) -> tuple[float, float]:
        """``(beta1, beta2)``, PyTorch's name for the two defaults."""
        return self.beta1, self.beta2

    @betas.setter
    def betas(self, value: tuple[float, float]) -> None:
        beta1, beta2 = _betas(type(self).__name__, 0.9, 0.999, value)
        self.validate(lr=self.lr, beta1=beta1, beta2=beta2, eps=self.eps,
                      weight_decay=self.weight_decay)
        self.beta1, self.beta2 = beta1, beta2

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
            for h, first, end in self._hyper_runs():
                self._update(flat.backend, flat.window(flat.params, first, end),
                             flat.window(grad, first, end), flat.window(flat.state["m"], first, end),
                             flat.window(flat.state["v"], first, end), h, step)
            return
        for i, p, h, data, grad in self._each_parameter():
            entry = self.state.get(i)
            if entry is None:
                backend = p.device.backend
                entry = self.state[i] = {"step": 0, "m": backend.full(data.shape, 0.0, data.dtype),
                                         "v": backend.full(data.shape, 0.0, data.dtype)}
            entry["step"] += 1
            try:
                self._update(p.device.backend, data, grad, entry["m"], entry["v"], h,
                             entry["step"])
            except Exception as exc:
                entry["step"] -= 1
                raise self._update_failed(i, p, exc) from exc

    def _update(self, backend: Any, param: Array, grad: Array, m: Array, v: Array,
                h: dict[str, Any], step: int) -> None:
        """One step on ``param`` (a parameter or a run of the flat buffer), in place."""
        backend.adam_update(param, grad, m, v, h["lr"], h["beta1"], h["beta2"], h["eps"],
                            h["weight_decay"], step)


class AdamW(Adam):
    """Adam with decoupled weight decay: the weights shrink, the gradient is left alone.

    .. math::

        \\theta &\\leftarrow \\theta\\,(1 - \\eta\\lambda) \\\\
        m &\\leftarrow \\beta_1 m + (1-\\beta_1) \\nabla_\\theta,\\quad
        v \\leftarrow \\beta_2 v + (1-\\beta_2) \\nabla_\\theta^2 \\\\
        \\theta &\\leftarrow \\theta - \\eta\\, \\frac{m / (1-\\beta_1^t)}
        {\\sqrt{v / (1-\\beta_2^t)} + \\epsilon}

    The same numbers as ``torch.optim.AdamW`` (whose defaults these are). With L2 in
    Adam the decay is divided by √v like the gradient, so weights with large
    gradients are barely regularised; decoupling treats every weight alike.

    Args:
        params (Iterable): Tensors, ``(name, Tensor)`` pairs or parameter groups
            (dicts with ``"params"`` and any of the keyword arguments below; the usual
            one puts biases and norms in a group with ``"weight_decay": 0.0``).
        lr (float, optional): learning rate η. Default: ``1e-3``.
        beta1 (float, optional): β1. Default: ``0.9``.
        beta2 (float, optional): β2. Default: ``0.999``.
        eps (float, optional): ε. Default: ``1e-8``.
        weight_decay (float, optional): decoupled decay λ. Default: ``1e-2``.
        betas (tuple[float, float], optional): ``(β1, β2)`` instead of
            ``beta1``/``beta2``. Default: ``None``.
        fused (bool, optional): the update path, as for :class:`Adam`. Default: ``None``.

    Examples:
        >>> import needle.nn as nn, needle.optim as optim
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm1d(4))
        >>> named = list(model.named_parameters())
        >>> opt = optim.AdamW([
        ...     {"params": [p for n, p in named if n.endswith("0.weight")]},
        ...     {"params": [p for n, p in named if not n.endswith("0.weight")],
        ...      "weight_decay": 0.0}], lr=1e-3)
        >>> [len(g["params"]) for g in opt.param_groups]
        [1, 3]
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-2, *,
                 betas: tuple[float, float] | None = None, fused: bool | None = None) -> None:
        super().__init__(params, lr, beta1, beta2, eps, weight_decay, betas=betas, fused=fused)

    def _update(self, backend: Any, param: Array, grad: Array, m: Array, v: Array,
                h: dict[str, Any], step: int) -> None:
        decay = h["lr"] * h["weight_decay"]
        if decay:
            backend.setitem(param, ..., backend.multiply(param, 1.0 - decay))
        backend.adam_update(param, grad, m, v, h["lr"], h["beta1"], h["beta2"], h["eps"],
                            0.0, step)


def _betas(owner: str, beta1: float, beta2: float,
           betas: tuple[float, float] | None) -> tuple[float, float]:
    """``betas`` if given (then beta1/beta2 must be left at their defaults), else the pair."""
    if betas is None:
        return beta1, beta2
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    if (beta1, beta2) != (0.9, 0.999):
        raise ValueError(f"{owner}: give betas=(b1, b2) or beta1/beta2, not both")
    return float(betas[0]), float(betas[1])
