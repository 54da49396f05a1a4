"""Losses."""

from __future__ import annotations

from typing import Any

import numpy as np
from needle import NeedleError, Tensor, ops

from .module import Module


class SoftmaxLoss(Module):
    """Mean cross-entropy of ``logits`` against integer class ids ``y``.

    ``loss = (1/N) Σ_n (logsumexp(z_n) - z_n[y_n])``, where logsumexp subtracts the row
    maximum first, so large logits never overflow.

    Shapes: ``logits`` ``(N, k)``, ``y`` ``(N,)`` (an integer or float tensor or array of
    whole numbers in ``[0, k)``; others are an error); the loss is a scalar tensor.

    Examples:
        >>> loss_fn = ndl.nn.SoftmaxLoss()
        >>> logits = ndl.Tensor(np.zeros((4, 10)))
        >>> round(loss_fn(logits, np.array([0, 1, 2, 3])).item(), 4)   # log(10)
        2.3026
    """

    def forward(self, logits: Tensor, y: Any) -> Tensor:
        if logits.ndim != 2 or logits.shape[0] == 0:
            raise NeedleError(f"SoftmaxLoss expects logits of shape (N, classes) with N > 0, "
                              f"got shape {logits.shape}")
        n, k = logits.shape
        y_shape = y.shape if isinstance(y, Tensor) else tuple(np.shape(y))
        if y_shape != (n,):
            raise NeedleError(f"SoftmaxLoss: labels must have shape ({n},) to match logits "
                              f"of shape {logits.shape}, got shape {y_shape}")
        if isinstance(y, Tensor):
            if y.dtype.kind == "f":  # the course's loaders hand out float32 class ids
                _check_whole(y.numpy())
        else:
            y = np.asarray(y)
            if y.dtype.kind == "f":
                _check_whole(y)
            y = Tensor(y, device=logits.device, dtype="int64", requires_grad=False)
        # One fused op (same value as the course's formula); it rejects ids outside [0, k).
        return ops.softmax_cross_entropy(logits, y)


def _check_whole(labels: np.ndarray) -> None:
    """Float labels must hold whole numbers: 1.9 is not class 1 (casting would say it is)."""
    bad = labels != np.floor(labels)  # NaN is caught too
    if bad.any():
        i = int(np.argmax(bad.reshape(-1)))
        raise NeedleError(f"SoftmaxLoss: labels are class ids and must be whole numbers; "
                          f"label {float(labels.reshape(-1)[i]):g} at position {i} is not")
