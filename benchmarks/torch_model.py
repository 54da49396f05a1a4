"""The course's MLP-ResNet in PyTorch (eager), laid out parameter for parameter like
``numpy_mlp`` so the two can share weights and be checked against each other; and the
pieces the other benchmarks' PyTorch copies of needle's models share."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


@functools.cache
def _residual_type(torch: Any) -> Any:
    class Residual(torch.nn.Module):
        def __init__(self, fn: Any) -> None:
            super().__init__()
            self.fn = fn

        def forward(self, x: Any) -> Any:
            return self.fn(x) + x

    return Residual


def residual(torch: Any, fn: Any) -> Any:
    """A module computing ``fn(x) + x`` (needle's ``nn.Residual``)."""
    return _residual_type(torch)(fn)


def parameter(torch: Any, p: Any, transpose: bool = False) -> Any:
    """needle parameter ``p`` as a torch Parameter (a copy); (1, n) biases become (n,)."""
    a = p.numpy().reshape(p.shape[-1]) if p.shape[0] == 1 else p.numpy()
    return torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(a.T if transpose else a)))


def linear(torch: Any, layer: Any) -> Any:
    """needle ``nn.Linear`` ``layer`` as ``torch.nn.Linear`` (needle keeps W as (in, out))."""
    out = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    out.weight = parameter(torch, layer.weight, transpose=True)
    if layer.bias is not None:
        out.bias = parameter(torch, layer.bias)
    return out


def build(torch: Any, dim: int = 784, hidden: int = 100, blocks: int = 3, classes: int = 10,
          drop_prob: float = 0.1, params: list[np.ndarray] | None = None,
          dtype: Any = None) -> Any:
    """``torch.nn.Sequential`` MLP-ResNet; ``params`` (numpy_mlp order, weights (in, out)) if given."""
    nn = torch.nn

    def block(d: int, h: int) -> Any:
        return nn.Sequential(residual(torch, nn.Sequential(
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
