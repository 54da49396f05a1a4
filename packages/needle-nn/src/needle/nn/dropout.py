"""Dropout: zero each element with probability p during training, scale the rest."""

from __future__ import annotations

from needle import NeedleError, Tensor

from .. import init
from .module import Module


class Dropout(Module):
    """In training, x * mask / (1 - p) with mask ~ Bernoulli(1 - p) (the course's draw:
    ``randb(*x.shape, p=1 - p)``), so the expected output equals x; in eval, x."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise NeedleError(f"Dropout: p is a probability in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        mask = init.randb(*x.shape, p=1 - self.p, device=x.device, dtype=x.dtype)
        # scale the mask, not the activations: one graph op instead of two
        return x * (mask / (1 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
