"""The Optimizer base class: parameters, the step's two paths, gradient reset, resumable state.

Each optimizer writes its update formula once (``_update``, a call of the backend's
``sgd_update``/``adam_update`` kernel on arrays: no Tensor, no graph, no change to
``.grad``), and ``step()`` calls it by one of two paths, chosen at construction:

* **fused** (the default, ``fused=True``): parameters that share a device, dtype,
  hyper-parameters and step count form a run; the run's gradients are concatenated
  and its values copied into a flat scratch buffer, updated in one call over the
  run's window of the flat state, and the new values copied back (tinygrad's
  concatenate, one kernel, split). A model is one run, so a step is one kernel call
  plus two copies per parameter instead of a kernel call (several array operations
  on the CPU) per parameter.
* **for-loop** (``fused=False`` or ``foreach=False``): one call per parameter.

Both paths read and write the same state (see ``state.py``), so results agree and
nothing depends on which ran before. Parameter storage is never shared: each
parameter keeps its own array, updated in place, which keeps its dtype and
identity (float64 weights stay float64, modules holding them see the update,
``p.data = ...``, ``load_state_dict`` and ``Module.to`` just work). A consequence,
as in PyTorch: a graph built *before* ``step()`` that is differentiated *after* it
sees the new values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from needle.autograd import Tensor
from needle.device import Device

from .state import StateLayout

Array = Any  # a backend array
#: One parameter's share of a step: index, parameter, hyper-parameters, value, gradient.
Work = tuple[int, Tensor, dict[str, Any], Array, Array]


class Optimizer:
    """Holds ``params`` (course name) and per-parameter state keyed by parameter index.

    Subclasses list their hyper-parameters in ``hyper_names`` and their
    per-parameter state arrays in ``state_arrays``; ``self.state[i]`` maps those
    names to backend arrays (views into the flat state of ``state.py``: change them in
    place or through ``load_state_dict``), and the names in ``state_ints`` (Adam's
    ``"step"``) to ints. A subclass writes its update formula once, in ``_update``.

    ``foreach`` and ``fused`` choose the path of ``step()`` (PyTorch's keywords; see the
    module docstring): ``fused=True`` or ``foreach=True`` the fused path, ``False`` the
    for-loop; left at ``None`` the fused path, the fastest on the CPU backend for any
    model with more than one parameter. needle has one multi-tensor implementation,
    so ``foreach=True`` selects the same path as ``fused=True``. ``self.fused`` says
    which runs (and may be changed between steps: both paths share the state).

    ``params`` is an iterable of Tensors, of ``(name, Tensor)`` pairs (what
    ``model.named_parameters()`` yields), or PyTorch's parameter groups: a list of
    dicts ``{"params": [...], "lr": ..., ...}`` whose other keys override the
    optimizer's hyper-parameters for that group. ``self.lr`` (and the other
    attributes) are the defaults a group without its own value follows, so a
    schedule that sets ``optimizer.lr`` moves them; ``param_groups[g]`` can be
    edited between steps, as in PyTorch.
    """

    hyper_names: tuple[str, ...] = ("lr",)
    #: Group keys that stand for several hyper-parameters (Adam's ``betas``).
    hyper_aliases: dict[str, tuple[str, ...]] = {}
    state_arrays: tuple[str, ...] = ()
    state_ints: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], *, foreach: bool | None = None,
                 fused: bool | None = None, **defaults: float) -> None:
        self.fused: bool = choose_path(type(self).__name__, foreach, fused)
        for name, value in defaults.items():
            setattr(self, name, value)
        self.param_groups: list[dict[str, Any]] = self._parse_groups(params)
        self.params: list[Tensor] = [p for g in self.param_groups for p in g["params"]]
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        self.state: dict[int, dict[str, Any]] = {}
        self._layout = StateLayout([])  # laid out for the parameters by the first step
        if defaults:
            for group in self.param_groups:
                self.validate(**self._group_hyper(group))

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Append a parameter group (PyTorch's way to train layers unfrozen later); its
        parameters get the next indices, with fresh state."""
        if not isinstance(group, dict):
            raise TypeError(f"{type(self).__name__}.add_param_group expects a dict with "
                            f"'params', got {type(group).__name__}")
        known = {id(p) for p in self.params}
        new = self._parse_groups([{"params": []}] * len(self.param_groups) + [group])[-1]
        if any(id(p) in known for p in new["params"]):
            raise ValueError(f"{type(self).__name__}.add_param_group: a parameter is already in "
                             f"another group")
        if hasattr(self, self.hyper_names[0]):
            self.validate(**self._group_hyper(new))
        self.param_groups.append(new)
        self.params.extend(new["params"])  # the next step lays their state out

    def _parse_groups(self, params: Iterable[Any]) -> list[dict[str, Any]]:
        """``params`` as a list of groups, each ``{"params": [unique Tensors], overrides}``
        (plus ``"param_names"`` when names came with them); every check names the culprit."""
        name = type(self).__name__
        if isinstance(params, (Tensor, dict)):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of parameter "
                            f"groups, got a single {type(params).__name__}")
        items = list(params)
        if items and all(isinstance(item, dict) for item in items):
            raw = items
        elif any(isinstance(item, dict) for item in items):
            raise TypeError(f"{name}: params mixes parameter-group dicts with Tensors; give a "
                            f"list of groups or a list of Tensors")
        else:
            raw = [{"params": items}]
        seen: dict[int, int] = {}
        groups = []
        for g, spec in enumerate(raw):
            where = f"param group {g}" if items is raw else "params"
            if "params" not in spec:
                raise ValueError(f"{name}: {where} has no 'params' key")
            group = self._group_overrides(spec, where)
            tensors, names = [], []
            for i, item in enumerate(_as_list(spec["params"])):
                label, p = item if isinstance(item, tuple) and len(item) == 2 else (None, item)
                if not isinstance(p, Tensor):
                    raise TypeError(f"{name}: {where}[{i}] is a {type(p).__name__}, not a Tensor")
                if id(p) in seen:
                    if seen[id(p)] != g:  # within a group: a shared weight listed twice
                        raise ValueError(f"{name}: a parameter is in both param group "
                                         f"{seen[id(p)]} and {g}")
                    continue
                seen[id(p)] = g
                tensors.append(p)
                names.append(label)
            group["params"] = tensors
            if any(n is not None for n in names):
                group["param_names"] = names
            groups.append(group)
        return groups

    def _group_overrides(self, spec: dict[str, Any], where: str) -> dict[str, Any]:
        """A group's hyper-parameter overrides, aliases expanded, unknown keys refused."""
        name = type(self).__name__
        group: dict[str, Any] = {}
        for key, value in spec.items():
            if key in ("params", "param_names"):
                continue
            if key in self.hyper_aliases:
                parts = self.hyper_aliases[key]
                if not isinstance(value, (tuple, list)) or len(value) != len(parts):
                    raise ValueError(f"{name}: {where}: {key} must be a tuple of {len(parts)} "
                                     f"numbers, got {value!r}")
                group.update(zip(parts, value))
            elif key in self.hyper_names:
                group[key] = value
            else:
                known = sorted([*self.hyper_names, *self.hyper_aliases])
                raise ValueError(f"{name}: {where} has unknown hyper-parameter {key!r} "
                                 f"(known: {known})")
        return group

    def _group_hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        """The hyper-parameters in force for ``group``: its overrides, else the defaults."""
        return {k: group[k] if k in group else getattr(self, k) for k in self.hyper_names}

    # -- the step: one formula (``_update``), two ways to call it -------------------------
    def step(self) -> None:
        """Update every parameter that has a gradient, in place, by the path chosen at
        construction (``self.fused``); parameters whose ``grad`` is None are skipped."""
        work = self._gather()
        if self.fused:
            self._fused_step(work)
        else:
            self._for_loop_step(work)

    def _gather(self) -> list[Work]:
        """``(index, parameter, hyper-parameters, value array, grad array)`` for every
        parameter with a gradient, checked by ``_arrays`` (the one check of both paths);
        the state is laid out again first if a parameter changed device, dtype or shape."""
        keys = self._layout.keys
        stale = len(keys) != len(self.params)
        work: list[Work] = []
        i = 0
        for group in self.param_groups:
            hyper = self._group_hyper(group)
            for p in group["params"]:
                a = p._array
                if not stale and keys[i] != (p._device, a.dtype, a.shape):
                    stale = True
                pair = self._arrays(i, p)
                if pair is not None:
                    work.append((i, p, hyper, *pair))
                i += 1
        if stale:
            self._relayout()
        return work

    def _update(self, backend: Any, param: Array, grad: Array, state: dict[str, Array],
                hyper: dict[str, Any], step: int) -> None:
        """The update formula, in place on ``param`` and the arrays in ``state``. Every path
        calls it: on one parameter's arrays, or on the flat arrays of a run of them."""
        raise NotImplementedError

    def _state_names(self, hyper: dict[str, Any]) -> tuple[str, ...]:
        """The state arrays an update with ``hyper`` uses (SGD without momentum: none)."""
        return self.state_arrays

    def _for_loop_step(self, work: list[Work]) -> None:
        """One ``_update`` per parameter, on its own array and its state views."""
        for i, p, hyper, data, grad in work:
            names = self._state_names(hyper)
            entry = self.state.get(i)
            step = entry.get("step", 0) + 1 if entry else 1
            try:
                self._update(p._device.backend, data, grad, self._state_of(i, names), hyper, step)
            except Exception as exc:
                raise self._update_failed(f"parameter {i}", p, exc) from exc
            self._stepped(i, names, step)

    def _fused_step(self, work: list[Work]) -> None:
        """One ``_update`` per run of consecutive parameters with gradients that share a
        device, dtype, hyper-parameters and step count (usually the whole model)."""
        state, slots = self.state, self._layout.slots
        run: list[Work] = []
        run_step = 0
        for item in work:
            i, hyper = item[0], item[2]
            entry = state.get(i)
            step = entry.get("step", 0) + 1 if entry else 1
            if run:
                last = run[-1]
                if last[0] != i - 1 or slots[i][0] is not slots[i - 1][0] or step != run_step \
                        or (hyper is not last[2] and hyper != last[2]):
                    self._fused_update(run, run_step)
                    run = []
            run.append(item)
            run_step = step
        if run:
            self._fused_update(run, run_step)

    def _fused_update(self, run: list[Work], step: int) -> None:
        """Copy the run's values into the flat scratch buffer ``"values"`` and concatenate
        its gradients, update them over the run's window of the flat state in one call,
        copy the new values back into each parameter's own array.

        Why a scratch buffer for the values: it is allocated once and each parameter's
        view of it is made once, so the two copies cost one call per parameter each.
        """
        first, last, hyper = run[0][0], run[-1][0], run[0][2]
        layout = self._layout
        bucket, start, _ = layout.slots[first]
        end = layout.slots[last][2]
        backend = bucket.backend
        names = self._state_names(hyper)
        try:
            if len(run) == 1:  # nothing to gather: update the parameter itself
                self._update(backend, run[0][3], run[0][4], self._state_of(first, names), hyper,
                             step)
            else:
                setitem, values = backend.setitem, layout.views("values")
                for i, _, _, data, _ in run:
                    setitem(values[i], ..., data)
                grads = backend.concatenate([item[4] for item in run], None)
                window = {name: bucket.window(name, start, end) for name in names}
                self._update(backend, bucket.window("values", start, end), grads, window, hyper,
                             step)
                for i, _, _, data, _ in run:
                    setitem(data, ..., values[i])
        except Exception as exc:
            where = f"parameter {first}" if first == last else f"parameters {first}..{last}"
            raise self._update_failed(where, run[0][1], exc) from exc
        state, counted, full = self.state, bool(self.state_ints), len(names) + len(self.state_ints)
        for item in run:
            i = item[0]
            entry = state.get(i)
            if entry is None or len(entry) < full:
                self._stepped(i, names, step)
            elif counted:  # the usual case, inline: this loop runs for every parameter
                entry["step"] = step

    def _state_of(self, i: int, names: tuple[str, ...]) -> dict[str, Array]:
        """Parameter ``i``'s state arrays ``names`` (views; zeros before its first step)."""
        entry = self.state.get(i)
        if entry is not None and all(name in entry for name in names):
            return entry
        return {name: self._layout.view(i, name) for name in names}

    def _stepped(self, i: int, names: tuple[str, ...], step: int) -> None:
        """Record parameter ``i``'s step: its state entry (only once it has state) and count."""
        entry = self.state.get(i)
        if entry is None:
            if not names and not self.state_ints:
                return  # SGD without momentum keeps no state
            entry = self.state[i] = {}
        if len(entry) < len(names) + len(self.state_ints):  # new, or momentum turned on
            entry.update({n: self._layout.view(i, n) for n in names if n not in entry})
        for name in self.state_ints:
            entry[name] = step

    def _relayout(self, sources: list[Device] | None = None) -> None:
        """Lay the state out for the parameters as they are now (first step, a new group,
        ``Module.to``, a load): each entry's arrays move from ``sources[i]`` (by default
        where the last layout had them) into the new buffers."""
        old = self._layout.keys
        layout = StateLayout(self.params)
        for i, entry in self.state.items():
            source = sources[i] if sources is not None else \
                old[i][0] if i < len(old) else self.params[i]._device
            layout.adopt(i, entry, self.state_arrays, source, f"{type(self).__name__}.step")
        self._layout = layout

    def _arrays(self, i: int, p: Tensor) -> tuple[Array, Array] | None:
        """``p``'s writeable array and its gradient's array after checking they match, or
        ``None`` when ``p`` has no gradient. Every path checks through here."""
        g = p.grad
        if g is None:
            return None
        data, grad = p._array, g._array
        if grad.shape != data.shape:
            raise ValueError(f"{type(self).__name__}.step: parameter {i} has shape "
                             f"{tuple(data.shape)} but its grad has shape {tuple(grad.shape)}")
        if g._device is not p._device and g._device != p._device:
            raise ValueError(f"{type(self).__name__}.step: parameter {i} is on {p.device} but its "
                             f"grad is on {g.device}")
        flags = getattr(data, "flags", None)
        if (flags is not None and not getattr(flags, "writeable", True)) \
                or 0 in getattr(data, "strides", ()):  # CuPy's flags have no writeable
            # A read-only or broadcast view (several elements share memory):
            # give the parameter its own array once, then update that in place.
            data = p._array = p._device.backend.copy(data)
        return data, grad

    def _update_failed(self, where: str, p: Tensor, exc: Exception) -> ValueError:
        return ValueError(f"{type(self).__name__}.step: updating {where} ({p.dtype}"
                          f"{list(p.shape)}) with its grad ({p.grad.dtype}) failed: {exc}")

    def reset_grad(self) -> None:
        """Forget every gradient (course name): the next backward starts from zero."""
        for p in self.params:
            p.grad = None

    zero_grad = reset_grad

    # -- resumable state --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot (copies) of hyper-parameters and per-parameter state.

        Arrays come back as constant Tensors so ``needle.save`` stores them and
        ``needle.load(device=...)`` can move them; later steps do not change it.
        """
        state = {}
        for i, entry in self.state.items():
            p = self.params[i]
            state[i] = {k: Tensor.make_const(p.device.backend.copy(v), device=p.device)
                        if k in self.state_arrays else v for k, v in entry.items()}
        out = {"optimizer": type(self).__name__, "num_params": len(self.params),
               "hyper": {k: getattr(self, k) for k in self.hyper_names}, "state": state}
        groups = self._groups_state()
        if groups != self._groups_state(plain=True):
            out["groups"] = groups  # only when there are groups: old snapshots stay as they were
        return out

    def _groups_state(self, plain: bool = False) -> list[dict[str, Any]]:
        """Each group's parameter indices and overrides (``plain``: one group, no overrides)."""
        if plain:
            return [{"params": list(range(len(self.params)))}]
        out, start = [], 0
        for group in self.param_groups:
            end = start + len(group["params"])
            overrides = {k: v for k, v in group.items() if k in self.hyper_names}
            out.append({"params": list(range(start, end)), **overrides})
            start = end
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue exactly where ``state_dict`` was taken (same parameters, same order).

        Everything is checked before anything changes: a mismatch raises
        ``ValueError`` saying what differs and leaves the optimizer as it was.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or state_dict.get("optimizer") != name:
            found = state_dict.get("optimizer") if isinstance(state_dict, dict) else state_dict
            raise ValueError(f"{name}.load_state_dict: this is not a {name} state dict "
                             f"(optimizer: {found!r:.60})")
        if state_dict.get("num_params") != len(self.params):
            raise ValueError(f"{name}.load_state_dict: the state dict is for "
                             f"{state_dict.get('num_params')} parameters, this optimizer has "
                             f"{len(self.params)}")
        hyper = state_dict.get("hyper", {})
        if set(hyper) != set(self.hyper_names):
            raise ValueError(f"{name}.load_state_dict: hyper-parameters {sorted(hyper)} != "
                             f"{sorted(self.hyper_names)}")
        self.validate(**hyper)
        groups = state_dict.get("groups", self._groups_state(plain=True))
        mine = self._groups_state()
        if not isinstance(groups, list) or len(groups) != len(mine) or any(
                not isinstance(g, dict) or list(g.get("params", ())) != m["params"]
                or not set(g) - {"params"} <= set(self.hyper_names)
                for g, m in zip(groups, mine)):
            sizes = [len(m["params"]) for m in mine]
            raise ValueError(f"{name}.load_state_dict: the state dict's parameter groups "
                             f"{groups!r:.80} do not match this optimizer's ({len(mine)} groups "
                             f"of {sizes} parameters)")
        for g in groups:
            self.validate(**{**hyper, **{k: v for k, v in g.items() if k != "params"}})
        new_state = {}
        expected = set(self.state_arrays) | set(self.state_ints)
        for i, entry in state_dict.get("state", {}).items():
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.params) \
                    or not isinstance(entry, dict) or set(entry) != expected:
                raise ValueError(f"{name}.load_state_dict: bad state for parameter {i!r}: expected "
                                 f"{sorted(expected)}, got {entry!r:.80}")
            new_state[i] = {k: self._load_array(i, k, v) if k in self.state_arrays else int(v)
                            for k, v in entry.items()}
        for k, v in hyper.items():
            setattr(self, k, v)
        for group, g in zip(self.param_groups, groups):
            for k in self.hyper_names:
                group.pop(k, None)
            group.update({k: v for k, v in g.items() if k != "params"})
        self.state = new_state
        self._relayout([p._device for p in self.params])  # the arrays were made there

    def _load_array(self, i: int, key: str, value: Any) -> Array:
        """``value`` (Tensor or NumPy array) as a fresh array on parameter ``i``'s device and dtype."""
        p = self.params[i]
        array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
        if tuple(array.shape) != p.shape:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state {key!r} of parameter "
                             f"{i} has shape {tuple(array.shape)}, the parameter has {p.shape}")
        return p.device.backend.array(array, p.dtype)

    @classmethod
    def validate(cls, **hyper: float) -> None:
        """Raise ``ValueError`` naming any out-of-range hyper-parameter."""
        raise NotImplementedError


def choose_path(owner: str, foreach: bool | None, fused: bool | None) -> bool:
    """Whether ``step()`` takes the fused path, from PyTorch's two keywords."""
    for name, value in (("foreach", foreach), ("fused", fused)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{owner}: {name} must be True, False or None, got {value!r}")
    if foreach is not None and fused is not None and foreach != fused:
        raise ValueError(f"{owner}: foreach={foreach} and fused={fused} ask for different "
                         f"paths; give one of them")
    choice = fused if fused is not None else foreach
    return True if choice is None else choice


def check_range(owner: str, name: str, value: Any, low: float, high: float = math.inf,
                high_open: bool = False) -> None:
    """A finite ``low <= value <= high`` (``< high`` if ``high_open``), else a ValueError naming it."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bound = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{owner}: invalid {name}: {value!r} (must be a number in {bound})")


def _as_list(params: Any) -> list[Any]:
    if isinstance(params, Tensor):
        return [params]  # PyTorch accepts a lone Tensor as a group's params
    return list(params)
