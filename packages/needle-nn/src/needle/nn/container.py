"""Modules that compose others: ``Sequential`` and ``Residual``."""

from __future__ import annotations

from typing import Any

from needle import Tensor

from .module import Module


class Sequential(Module):
    """Applies its modules in order: ``y = m_n(... m_2(m_1(x)))``.

    The modules are kept in ``.modules`` (a tuple), as in the course, so their names in
    ``state_dict`` read ``modules.0.weight``.

    Args:
        *modules (Module): the layers, applied first to last.

    Examples:
        >>> model = ndl.nn.Sequential(ndl.nn.Linear(4, 8), ndl.nn.ReLU(), ndl.nn.Linear(8, 2))
        >>> model(ndl.Tensor(np.ones((3, 4)))).shape
        (3, 2)
        >>> sorted(model.state_dict())[:2]
        ['modules.0.bias', 'modules.0.weight']
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self.modules = modules

    def forward(self, x: Any) -> Any:
        for module in self.modules:
            x = module(x)
        return x

    def __len__(self) -> int:
        return len(self.modules)

    def __getitem__(self, index: int) -> Module:
        return self.modules[index]


class Residual(Module):
    """A skip connection: ``y = fn(x) + x``.

    Shapes: ``fn`` must return its input's shape.

    Args:
        fn (Module): the branch added to its input.

    Examples:
        >>> block = ndl.nn.Residual(ndl.nn.Linear(4, 4))
        >>> block(ndl.Tensor(np.ones((2, 4)))).shape
        (2, 4)
    """

    def __init__(self, fn: Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x
