"""The course's MLP-ResNet in PyTorch (eager), laid out parameter for parameter like
``numpy_mlp`` so the two can share weights and be checked against each other."""

from __future__ import annotations

from typing import Any

import numpy as np


def build(torch: Any, dim: int = 784, hidden: int = 100, blocks: int = 3, classes: int = 10,
          drop_prob: float = 0.1, params: list[np.ndarray] | None = None,
          dtype: Any = None) -> Any:
    """``torch.nn.Sequential`` MLP-ResNet; ``params`` (numpy_mlp order, weights (in, out)) if given."""
    nn = torch.nn

    class Residual(nn.Module):
        def __init__(self, fn: Any) -> None:
            super().__init__()
            self.fn = fn

        def forward(self, x: Any) -> Any:
            return self.fn(x) + x

    def block(d: int, h: int) -> Any:
        return nn.Sequential(Residual(nn.Sequential(
            nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(drop_prob),
            nn.Linear(h, d), nn.BatchNorm1d(d))), nn.ReLU())

    net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(),
                        *[block(hidden, hidden // 2) for _ in range(blocks)],
                        nn.Linear(hidden, classes))
    if dtype is not None:
        net = net.to(dtype)
    if params is not None:
        ours = list(net.parameters())
        if len(ours) != len(params):
            raise ValueError(f"expected {len(ours)} parameter arrays, got {len(params)}")
        with torch.no_grad():
            for t, p in zip(ours, params):
                t.copy_(torch.from_numpy(np.ascontiguousarray(p.T if p.ndim == 2 else p)))
    return net


def grads_in_numpy_order(net: Any) -> list[np.ndarray]:
    """Each parameter's gradient as NumPy, weights transposed back to (in, out)."""
    return [(p.grad.T if p.ndim == 2 else p.grad).detach().numpy() for p in net.parameters()]
