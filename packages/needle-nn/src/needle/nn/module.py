"""``Parameter`` and ``Module``: the course's recursive discovery plus PyTorch's conventions.

A module finds its parameters and sub-modules by walking its attributes, and
dicts, lists and tuples inside them, in attribute order (the course's rule; no
registration needed). Names are dotted paths through that walk: an attribute
``layers = [Linear(...)]`` gives ``layers.0.weight``. Buffers (state that is not
trained, such as BatchNorm's running statistics) are plain Tensors declared with
``register_buffer`` so that ``state_dict`` and ``to`` include them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
from needle import Device, NeedleError, Tensor
from needle import device as as_device


class Parameter(Tensor):
    """A Tensor that a Module trains: ``Module.parameters()`` finds every one."""

    def __repr__(self) -> str:
        return f"Parameter({self.numpy()!r}, device={self.device!r})"


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _members(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Parameters and Modules inside ``value`` (not inside those Modules), with names."""
    if isinstance(value, (Parameter, Module)):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _members(item, _join(prefix, str(key)))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _members(item, _join(prefix, str(i)))


class Module:
    """Base class of layers and models: subclass it and define ``forward``."""

    #: Training mode (``train()``/``eval()`` switch it through the whole tree).
    training: bool = True

    def __init__(self) -> None:
        self.training = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- discovery --------------------------------------------------------------
    def _direct(self) -> Iterator[tuple[str, Any, bool]]:
        """(name, item, is_buffer) for this module's own parameters, buffers and child
        modules, in attribute order."""
        buffers = self.__dict__.get("_buffer_names", ())
        for name, value in self.__dict__.items():
            if name in buffers:
                if value is not None:
                    yield name, value, True
            else:
                for path, item in _members(value, name):
                    yield path, item, False

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct sub-modules with their names (each module once)."""
        seen: set[int] = set()
        for name, item, _ in self._direct():
            if isinstance(item, Module) and id(item) not in seen:
                seen.add(id(item))
                yield name, item

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, depth first, each module once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            kids = [(_join(name, n), m) for n, m in module.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        """This module and every descendant (on ``Sequential``, ``.modules`` is the
        course's tuple of layers instead: use ``named_modules()`` there)."""
        for _, module in self.named_modules():
            yield module

    def _children(self) -> list[Module]:
        """Every descendant module (the course's name; not including ``self``)."""
        return [m for _, m in self.named_modules()][1:]

    def _walk(self, prefix: str, ancestors: set[int]) -> Iterator[tuple[str, Tensor, bool]]:
        """Every (name, tensor, is_buffer) under this module, aliases included, in the
        course's depth-first attribute order; a module containing its ancestor is skipped."""
        ancestors.add(id(self))
        for name, item, is_buffer in self._direct():
            path = _join(prefix, name)
            if isinstance(item, Module):
                if id(item) not in ancestors:
                    yield from item._walk(path, ancestors)
            else:
                yield path, item, is_buffer
        ancestors.discard(id(self))

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Parameters with dotted names; a shared parameter is yielded once, under its first name."""
        seen: set[int] = set()
        for name, tensor, is_buffer in self._walk(prefix, set()):
            if not is_buffer and id(tensor) not in seen:
                seen.add(id(tensor))
                yield name, tensor  # type: ignore[misc]

    def parameters(self) -> list[Parameter]:
        """Every trainable Parameter once, in the course's order."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        for name, tensor, is_buffer in self._walk(prefix, set()):
            if is_buffer and id(tensor) not in seen:
                seen.add(id(tensor))
                yield name, tensor

    def buffers(self) -> list[Tensor]:
        return [b for _, b in self.named_buffers()]

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """Keep ``tensor`` as ``self.<name>``: saved in ``state_dict``, moved by ``to``, never
        trained. Reassigning ``self.<name>`` later keeps it a buffer."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor or None, "
                            f"got {type(tensor).__name__}")
        if isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer({name!r}): a Parameter is trained, not a buffer")
        names = self.__dict__.setdefault("_buffer_names", [])
        if name not in names:
            names.append(name)
        setattr(self, name, tensor)

    # -- modes and housekeeping ---------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every descendant."""
        for _, module in self.named_modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (gradients accumulate until cleared)."""
        for p in self.parameters():
            p.grad = None

    def to(self, device: Device | str) -> Module:
        """Move parameters (with their gradients) and buffers to ``device`` in place.

        The Parameter objects stay the same, so an optimizer built before the move
        still updates them.
        """
        dev = as_device(device)
        for p in self.parameters():
            p.set_(p.to(dev))
            if p.grad is not None:
                p.grad = p.grad.to(dev)
        for b in self.buffers():
            b.set_(b.to(dev))
        return self

    # -- state dicts ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Dotted name -> detached Tensor (sharing data) for parameters and buffers.

        A parameter reachable under two names appears under both (PyTorch's rule), so a
        model with the same sharing loads it back.
        """
        return {name: t.detach() for name, t, _ in self._walk("", set())}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy ``state``'s values into this module's parameters and buffers.

        Every key is validated before anything is written, so a failed load changes
        nothing. Shapes and dtypes must match exactly (needle never casts silently);
        with ``strict`` missing and unexpected keys are errors too. Values may be
        Tensors on any device or NumPy arrays.
        """
        targets = {name: t for name, t, _ in self._walk("", set())}
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        mismatched = []
        for key, target in targets.items():
            if key not in state:
                continue
            value = state[key]
            shape, dtype = tuple(np.shape(value)), _dtype_of(value)
            if shape != target.shape:
                mismatched.append(f"{key!r}: shape {shape} in the state dict, "
                                  f"{target.shape} in the model")
            elif dtype != target.dtype:
                mismatched.append(f"{key!r}: dtype {dtype} in the state dict, "
                                  f"{target.dtype} in the model (convert with .astype)")
        problems = list(mismatched)
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if problems:
            raise NeedleError(f"load_state_dict for {type(self).__name__} failed (nothing was "
                              f"loaded): " + "; ".join(problems))
        for key, target in targets.items():
            if key in state:
                target.set_(_fresh_copy(state[key], target))
        return IncompatibleKeys(missing, unexpected)

    # -- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses (its configuration)."""
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _dtype_of(value: Any) -> np.dtype:
    dtype = getattr(value, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(value).dtype


def _fresh_copy(value: Any, target: Tensor) -> Tensor:
    """``value``'s contents as a new tensor on ``target``'s device (never aliased, so two
    models loaded from one state dict do not share memory)."""
    if isinstance(value, Tensor):
        if value.device == target.device:
            return value.detach().clone()
        return value.to(target.device)
    return Tensor(np.asarray(value), device=target.device, dtype=target.dtype)


def check_input(layer: Module, x: Tensor, ndim: int, axis: int, size: int, layout: str) -> None:
    """Raise an error naming ``layer`` and both shapes unless ``x`` has ``ndim`` axes (at
    least 2 when ``ndim`` is 0, meaning "any") and ``size`` entries on ``axis``.
    ``layout`` reads like ``"(N, {})"``; ``size`` fills it, only when there is an error.

    Cheap enough for every forward: a few integer comparisons on the shape.
    """
    shape = x.shape
    if (len(shape) != ndim if ndim else len(shape) < 2) or shape[axis] != size:
        raise NeedleError(f"{describe(layer)} expects input of shape {layout.format(size)}, "
                          f"got shape {shape}")


def describe(layer: Module) -> str:
    """``Name(config)`` on one line, to name a layer in an error message."""
    return f"{type(layer).__name__}({layer.extra_repr()})"
