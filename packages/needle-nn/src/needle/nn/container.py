"""Modules that compose others: ``Sequential``, ``Residual``, ``ModuleList``, ``ModuleDict``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
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
        >>> import needle as ndl, needle.nn as nn, numpy as np
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
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
        >>> import needle as ndl, needle.nn as nn, numpy as np
        >>> block = nn.Residual(nn.Linear(4, 4))
        >>> block(ndl.Tensor(np.ones((2, 4)))).shape
        (2, 4)
    """

    def __init__(self, fn: Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x


def _check_module(owner: str, where: str, module: Any) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{owner}: {where} must be a Module, got {type(module).__name__}")
    return module


class ModuleList(Module):
    """A list of modules whose parameters the model finds, named by position.

    As an attribute ``blocks = ModuleList([...])`` its entries appear in
    ``state_dict`` as ``blocks.0.weight``, ``blocks.1.weight``, ... (PyTorch's keys),
    and ``to``, ``train`` and ``eval`` reach them. A plain list attribute is also
    walked (the course's rule); ``ModuleList`` adds the list methods, type checks and
    PyTorch's key names. It has no ``forward``: iterate over it in yours.

    Args:
        modules (Iterable[Module], optional): the initial entries. Default: none.

    Examples:
        >>> import needle.nn as nn
        >>> blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        >>> blocks.insert(2, nn.ReLU())
        >>> len(blocks), list(blocks.state_dict())[:2]
        (3, ['0.weight', '0.bias'])
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        self._entries: list[Module] = []
        if modules is not None:
            self.extend(modules)

    def _direct(self) -> Iterator[tuple[str, Any, bool]]:
        for i, module in enumerate(self._entries):
            yield str(i), module, False

    def append(self, module: Module) -> ModuleList:
        self._entries.append(_check_module("ModuleList.append", "the entry", module))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if isinstance(modules, Module):
            raise TypeError("ModuleList.extend expects an iterable of Modules, got a "
                            f"{type(modules).__name__} (use append)")
        new = [_check_module("ModuleList", f"entry {i}", m) for i, m in enumerate(modules)]
        self._entries.extend(new)
        return self

    def insert(self, index: int, module: Module) -> None:
        self._entries.insert(index, _check_module("ModuleList.insert", "the entry", module))

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ModuleList(self._entries[index])
        return self._entries[index]

    def __setitem__(self, index: int, module: Module) -> None:
        self._entries[index] = _check_module("ModuleList", f"entry {index}", module)

    def __delitem__(self, index: int | slice) -> None:
        del self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._entries)


class ModuleDict(Module):
    """A dict of modules whose parameters the model finds, named by key.

    As an attribute ``heads = ModuleDict({"cls": ..., "box": ...})`` its entries appear
    in ``state_dict`` as ``heads.cls.weight``, ... in insertion order, and ``to``,
    ``train`` and ``eval`` reach them. Keys are non-empty strings without ``"."``
    (a dot would make ``state_dict`` names ambiguous). It has no ``forward``.

    Args:
        modules (Mapping[str, Module] | Iterable[tuple[str, Module]], optional): the
            initial entries. Default: none.

    Examples:
        >>> import needle.nn as nn
        >>> heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 3)})
        >>> sorted(heads.keys()), heads["b"].out_features
        (['a', 'b'], 3)
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None
                 ) -> None:
        super().__init__()
        self._entries: dict[str, Module] = {}
        if modules is not None:
            self.update(modules)

    def _direct(self) -> Iterator[tuple[str, Any, bool]]:
        for key, module in self._entries.items():
            yield key, module, False

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without '.', got {key!r}")
        self._entries[key] = _check_module("ModuleDict", f"entry {key!r}", module)

    def __getitem__(self, key: str) -> Module:
        try:
            return self._entries[key]
        except KeyError:
            raise KeyError(f"ModuleDict has no entry {key!r} (keys: {list(self._entries)})") \
                from None

    def __delitem__(self, key: str) -> None:
        del self._entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def keys(self) -> Any:
        return self._entries.keys()

    def values(self) -> Any:
        return self._entries.values()

    def items(self) -> Any:
        return self._entries.items()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update expects a mapping or (key, Module) pairs, "
                                f"got {pair!r:.60}")
            self[pair[0]] = pair[1]

    def pop(self, key: str) -> Module:
        module = self[key]
        del self._entries[key]
        return module
