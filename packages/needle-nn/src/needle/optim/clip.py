"""Gradient-norm clipping."""

from __future__ import annotations

import math
from collections.abc import Iterable

from needle.autograd import Tensor, no_grad

from .optimizer import check_range


def clip_grad_norm(params: Iterable[Tensor], max_norm: float,
                   error_if_nonfinite: bool = False) -> float:
    """Rescale gradients so their joint L2 norm is at most ``max_norm``; return the norm before.

    Unlike PyTorch, gradients are **not** scaled in place: each clipped parameter
    gets a new ``.grad`` tensor. A gradient array may be a read-only broadcast view
    or shared with another tensor (``(w * 1).sum()`` gives ``w`` a broadcast of
    ones), so writing into it would fail or corrupt other values. The norm is
    accumulated in float64 so float32 gradients cannot overflow it. Parameters
    whose grad is None are ignored; nothing changes when the norm is within bounds.
    A NaN or infinite norm is returned with the grads untouched (PyTorch would turn
    them into NaN), or raises ``ValueError`` when ``error_if_nonfinite``.

    ``total = √(Σ_p ‖grad_p‖²)``; when ``total > max_norm`` every gradient is multiplied by
    ``max_norm / total``.

    Args:
        params (Iterable[Tensor]): the parameters, usually ``model.parameters()``.
        max_norm (float): the largest joint norm allowed, at least 0.
        error_if_nonfinite (bool): raise instead of returning a NaN or infinite norm.
            Default: ``False``.

    Examples:
        >>> w = ndl.nn.Parameter(ndl.Tensor([3.0, 4.0]))
        >>> (w * w).sum().backward()                       # grad = 2w = [6, 8], norm 10
        >>> ndl.optim.clip_grad_norm([w], max_norm=1.0)
        10.0
        >>> w.grad.numpy().round(4)
        array([0.6, 0.8], dtype=float32)
    """
    check_range("clip_grad_norm", "max_norm", max_norm, 0.0)
    params = [p for p in params if p.grad is not None]
    with no_grad():  # the norm and the new gradients are values, never part of a graph
        total = sum(float((g * g).sum()) for g in (p.grad.astype("float64") for p in params))
        norm = math.sqrt(total)
        if not math.isfinite(norm):
            if error_if_nonfinite:
                raise ValueError(f"clip_grad_norm: the total gradient norm is {norm}")
            return norm  # no finite scale exists: leave grads alone, let the caller skip the step
        scale = max_norm / (norm + 1e-6)  # PyTorch's epsilon: never divide by zero
        if scale < 1.0:
            for p in params:
                p.grad = p.grad * scale
    return norm
