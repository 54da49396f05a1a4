"""Load a PyTorch ``state_dict`` into a needle model of the same architecture.

PyTorch and the course lay some weights out differently: ``nn.Linear`` keeps
``weight (out, in)`` where needle keeps ``(in, out)`` and a ``(1, out)`` bias;
``nn.Conv2d`` keeps ``(out, in, kh, kw)`` where needle keeps ``(kh, kw, in, out)``;
the recurrent layers keep ``weight_ih_l{k} (gates·hidden, in)`` where needle's cells
keep ``W_ih (in, gates·hidden)``. Names differ too (PyTorch's ``Sequential`` says
``0.weight``, the course's ``modules.0.weight``), so layers are matched by
*position*: the k-th PyTorch module holding weights goes to the k-th needle layer
holding weights, and within a layer by PyTorch's parameter names. Every mismatch
is reported with both sides' names before anything is loaded.

Values may be ``torch.Tensor`` (needle never imports torch: they are read through
``.detach().cpu().numpy()``), NumPy arrays (``safetensors.numpy.load_file``) or
needle Tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from needle import NeedleError, Tensor

from .conv import Conv
from .embedding import Embedding
from .linear import Linear
from .module import IncompatibleKeys, Module
from .normalization import BatchNorm1d, LayerNorm1d
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, _Cell, _Stacked

Arrays = dict[str, np.ndarray]


def load_torch_state_dict(model: Module, state_dict: Mapping[str, Any],
                          strict: bool = True) -> IncompatibleKeys:
    """Copy a PyTorch ``state_dict`` into ``model``, transposing to needle's layouts.

    Layers are paired in order (see the module docstring); ``num_batches_tracked``
    is ignored. Supported layers: ``Linear``, ``Conv`` (from ``Conv2d``),
    ``BatchNorm1d``/``BatchNorm2d``, ``LayerNorm1d`` (from ``LayerNorm``),
    ``Embedding``, ``RNN``/``LSTM``/``GRU`` (unidirectional) and their cells; any
    other module's tensors are copied in order and must match in shape.

    Args:
        model (Module): the needle model to load into.
        state_dict (Mapping[str, Any]): ``torch_model.state_dict()``.
        strict (bool, optional): passed to ``load_state_dict``. Default: ``True``.

    Examples:
        >>> import numpy as np, needle.nn as nn
        >>> torch_sd = {"0.weight": np.ones((4, 3), "float32"),
        ...             "0.bias": np.zeros(4, "float32")}  # what torch would give
        >>> model = nn.Sequential(nn.Linear(3, 4))
        >>> _ = nn.load_torch_state_dict(model, torch_sd)
        >>> model.modules[0].weight.shape
        (3, 4)
    """
    return model.load_state_dict(convert_torch_state_dict(model, state_dict), strict=strict)


def convert_torch_state_dict(model: Module, state_dict: Mapping[str, Any]) -> Arrays:
    """PyTorch's ``state_dict`` as needle's: needle names -> NumPy arrays in needle layouts."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        groups.setdefault(prefix, {})[leaf] = _numpy(key, value)
    layers = list(_layers(model))
    if len(groups) != len(layers):
        raise NeedleError(
            f"load_torch_state_dict: the PyTorch state dict has {len(groups)} modules with "
            f"weights {list(groups)}, the needle model {len(layers)} "
            f"{[f'{name or type(m).__name__}' for name, m in layers]}: not the same architecture")
    out: Arrays = {}
    for (prefix, tensors), (name, layer) in zip(groups.items(), layers):
        converted = _converter(layer)(layer, dict(tensors), f"{prefix!r} -> {name or 'model'!r}")
        own = {n: t for n, t in _own_tensors(layer)}
        for key, array in converted.items():
            target = own.get(key)
            if target is not None and tuple(array.shape) != target.shape:
                raise NeedleError(f"load_torch_state_dict: PyTorch {prefix!r} -> needle "
                                  f"{name!r} ({type(layer).__name__}): {key!r} converts to "
                                  f"shape {tuple(array.shape)}, the model has {target.shape}")
            out[f"{name}.{key}" if name else key] = array
    return out


def _numpy(key: str, value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.numpy()
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor, duck-typed
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            raise NeedleError(f"load_torch_state_dict: {key!r} is bfloat16, which NumPy has "
                              f"no dtype for; convert the model with .float() first")
        return value.numpy()
    if isinstance(value, np.ndarray):
        return value
    raise NeedleError(f"load_torch_state_dict: {key!r} is a {type(value).__name__}, not a "
                      f"tensor or array")


def _own_tensors(module: Module) -> list[tuple[str, Tensor]]:
    """The parameters and buffers a layer holds, with names relative to it."""
    return [(n, t) for n, t, _ in module._walk("", set())]


def _layers(model: Module) -> list[tuple[str, Module]]:
    """Needle's layers holding weights, in order: known layers whole, other modules by
    the tensors they hold directly."""
    out: list[tuple[str, Module]] = []
    inside: list[str] = []
    for name, module in model.named_modules():
        if any(p == "" or name.startswith(p + ".") for p in inside):
            continue
        if isinstance(module, _KNOWN):
            if _own_tensors(module):
                out.append((name, module))
            inside.append(name)
        elif any(not isinstance(item, Module) for _, item, _ in module._direct()):
            out.append((name, module))
    return out


def _take(tensors: dict[str, np.ndarray], where: str, *names: str,
          optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Pop ``names`` (required) and ``optional`` from a PyTorch module's tensors; refuse
    leftovers, so a module paired with the wrong layer says so."""
    missing = [n for n in names if n not in tensors]
    if missing:
        raise NeedleError(f"load_torch_state_dict: {where}: PyTorch's module has no {missing} "
                          f"(it has {sorted(tensors)})")
    got = {n: tensors.pop(n) for n in (*names, *optional) if n in tensors}
    if tensors:
        raise NeedleError(f"load_torch_state_dict: {where}: PyTorch's module has tensors "
                          f"{sorted(tensors)} that this needle layer has no place for")
    return got


def _linear(layer: Linear, t: dict[str, np.ndarray], where: str) -> Arrays:
    got = _take(t, where, "weight", optional=("bias",))
    out = {"weight": got["weight"].T}
    if "bias" in got:
        out["bias"] = got["bias"].reshape(1, -1)
    return out


def _conv(layer: Conv, t: dict[str, np.ndarray], where: str) -> Arrays:
    got = _take(t, where, "weight", optional=("bias",))
    if got["weight"].ndim != 4:
        raise NeedleError(f"load_torch_state_dict: {where}: a Conv needs a 4-D Conv2d weight, "
                          f"got shape {got['weight'].shape}")
    out = {"weight": got["weight"].transpose(2, 3, 1, 0)}  # (out, in, kh, kw) -> (kh, kw, in, out)
    if "bias" in got:
        out["bias"] = got["bias"]
    return out


def _same(*names: str, optional: tuple[str, ...] = ()) -> Callable[..., Arrays]:
    def convert(layer: Module, t: dict[str, np.ndarray], where: str) -> Arrays:
        return _take(t, where, *names, optional=optional)
    return convert


def _cell(layer: _Cell, t: dict[str, np.ndarray], where: str, suffix: str = "",
          prefix: str = "") -> Arrays:
    names = [f"{n}{suffix}" for n in ("weight_ih", "weight_hh")]
    biases = tuple(f"{n}{suffix}" for n in ("bias_ih", "bias_hh"))
    got = {n: t.pop(n) for n in (*names, *biases) if n in t}
    if any(n not in got for n in names):
        raise NeedleError(f"load_torch_state_dict: {where}: PyTorch's module has no "
                          f"{names} (it has {sorted(t)})")
    out = {f"{prefix}W_ih": got[names[0]].T, f"{prefix}W_hh": got[names[1]].T}
    for b, needle_name in zip(biases, ("bias_ih", "bias_hh")):
        if b in got:
            out[prefix + needle_name] = got[b]
    return out


def _single_cell(layer: _Cell, t: dict[str, np.ndarray], where: str) -> Arrays:
    out = _cell(layer, t, where)
    _take(t, where)  # nothing may be left
    return out


def _stacked(layer: _Stacked, t: dict[str, np.ndarray], where: str) -> Arrays:
    if any(k.endswith("_reverse") for k in t):
        raise NeedleError(f"load_torch_state_dict: {where}: bidirectional PyTorch layers have "
                          f"no needle counterpart")
    out: Arrays = {}
    for k in range(layer.num_layers):
        out.update(_cell(layer, t, where, f"_l{k}", f"{layer.cells_name}.{k}."))
    _take(t, where)
    return out


_CONVERTERS: list[tuple[type, Callable[..., Arrays]]] = [
    (Linear, _linear), (Conv, _conv), (Embedding, _same("weight")),
    (BatchNorm1d, _same("weight", "bias", "running_mean", "running_var")),
    (LayerNorm1d, _same("weight", "bias")),
    ((RNN, LSTM, GRU), _stacked), ((RNNCell, LSTMCell, GRUCell), _single_cell),
]
_KNOWN = tuple(c for types, _ in _CONVERTERS
               for c in (types if isinstance(types, tuple) else (types,)))


def _generic(layer: Module, t: dict[str, np.ndarray], where: str) -> Arrays:
    """A module needle has no rule for: its own tensors, in order, one for one."""
    own = [(n, item) for n, item, _ in layer._direct() if not isinstance(item, Module)]
    if len(own) != len(t):
        raise NeedleError(f"load_torch_state_dict: {where}: PyTorch's module has tensors "
                          f"{list(t)}, the {type(layer).__name__} {[n for n, _ in own]}")
    return {n: array for (n, _), array in zip(own, t.values())}


def _converter(layer: Module) -> Callable[..., Arrays]:
    for types, convert in _CONVERTERS:
        if isinstance(layer, types):
            return convert
    return _generic
