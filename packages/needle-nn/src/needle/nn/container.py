"""Modules that compose others: ``Sequential`` and ``Residual``."""

from __future__ import annotations

from typing import Any

from needle import Tensor

from .module import Module


class Sequential(Module):
    """Applies its modules in order. They are kept in ``.modules`` (a tuple), as in the
    course, so their names in ``state_dict`` read ``modules.0.weight``."""

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
    """fn(x) + x."""

    def __init__(self, fn: Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x
