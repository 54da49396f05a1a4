"""Dropout: zero each element with probability p during training, scale the rest."""

from __future__ import annotations

from needle import NeedleError, Tensor, ops

from .module import Module


class Dropout(Module):
    """Zeroes each element with probability ``p`` in training and scales the rest.

    In training ``y = x · mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)`` (the course's
    draw: ``randb(*x.shape, p=1 - p)``), so the expected output equals ``x``; in eval
    ``y = x``.

    Shapes: any input shape; the output has the same shape.

    Args:
        p (float): the probability of zeroing an element, in [0, 1]. Default: ``0.5``.

    Examples:
        >>> drop = ndl.nn.Dropout(p=0.5)
        >>> y = drop(ndl.Tensor(np.ones((2, 1000))))
        >>> sorted(set(y.numpy().ravel().tolist()))
        [0.0, 2.0]
        >>> drop.eval()(ndl.Tensor([1.0, 2.0])).numpy()
        array([1., 2.], dtype=float32)
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise NeedleError(f"Dropout: p is a probability in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
