"""The Optimizer base class: parameters, gradient reset, resumable state.

Updates run in place on each parameter's backend array through the backend's
fused ``sgd_update``/``adam_update`` (a few kernel calls per parameter, no Tensor,
no graph, no change to ``.grad``). In-place is what keeps a parameter's dtype and
identity: float64 weights stay float64, and modules holding them see the update.
A consequence, as in PyTorch: a graph built *before* ``step()`` that is
differentiated *after* it sees the new values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from needle.autograd import Tensor

Array = Any  # a backend array


class Optimizer:
    """Holds ``params`` (course name) and per-parameter state keyed by parameter index.

    Subclasses list their hyper-parameters in ``hyper_names`` and their
    per-parameter state arrays in ``state_arrays``; ``self.state[i]`` maps those
    names to backend arrays, and the names in ``state_ints`` (Adam's ``"step"``) to ints.

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

    def __init__(self, params: Iterable[Any], *, fused: bool | None = None,
                 **defaults: float) -> None:
        if fused is not None and not isinstance(fused, bool):
            raise TypeError(f"{type(self).__name__}: fused must be True, False or None, "
                            f"got {fused!r}")
        #: The update path (PyTorch's switch): ``True`` every parameter in one flat buffer,
        #: ``False`` one parameter at a time, ``None`` the flat buffer whenever it can run.
        self.fused = fused
        for name, value in defaults.items():
            setattr(self, name, value)
        self.param_groups: list[dict[str, Any]] = self._parse_groups(params)
        self.params: list[Tensor] = [p for g in self.param_groups for p in g["params"]]
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        self.state: dict[int, dict[str, Any]] = {}
        self._flat: _Flat | None = None
        if defaults:
            for group in self.param_groups:
                self.validate(**self._group_hyper(group))
        if fused:
            self._require_flat(self.params, at_step=False)

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
        if self.fused:
            self._require_flat(self.params + new["params"], at_step=False)
        self.param_groups.append(new)
        self.params.extend(new["params"])
        self._flat = None  # pack again with the new parameters

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

    def _hyper_runs(self) -> list[tuple[dict[str, Any], int, int]]:
        """(hyper-parameters, first, end) over runs of consecutive parameters that share
        them: one run for the usual single group, so the fused path stays one call."""
        groups = self.param_groups
        if len(groups) == 1:  # the usual case, on every step: no merging to do
            return [(self._group_hyper(groups[0]), 0, len(self.params))]
        runs: list[tuple[dict[str, Any], int, int]] = []
        start = 0
        for group in groups:
            hyper, end = self._group_hyper(group), start + len(group["params"])
            if end == start:
                continue
            if runs and runs[-1][0] == hyper:
                runs[-1] = (hyper, runs[-1][1], end)
            else:
                runs.append((hyper, start, end))
            start = end
        return runs

    def _hyper_of(self) -> list[dict[str, Any]]:
        """Each parameter's hyper-parameters, for the per-parameter path."""
        return [hyper for hyper, start, end in self._hyper_runs() for _ in range(start, end)]

    def step(self) -> None:
        raise NotImplementedError

    def reset_grad(self) -> None:
        """Forget every gradient (course name): the next backward starts from zero."""
        for p in self.params:
            p.grad = None

    zero_grad = reset_grad

    # -- the fused path: every parameter in one buffer -----------------------------------
    def _flat_arrays(self, names: tuple[str, ...]) -> tuple[_Flat, Array] | None:
        """Flat parameter and state buffers plus this step's flat gradient, or ``None``
        when the per-parameter path is to run: ``fused=False``, or (``fused=None``) a
        missing grad, mixed devices or dtypes, unequal step counts. With ``fused=True``
        those are a ``ValueError`` naming the parameter instead.

        Why: an update then costs a few backend calls for the whole model instead of a
        few per parameter, which is most of the optimizer's time on small models.
        Parameters and state entries become views into the buffers. Everything is
        packed again after a parameter's array was replaced (``p.data = ...``), after
        ``load_state_dict`` and after a per-parameter step.
        """
        if self.fused is False:
            return None
        grads = self._packed_grads()
        if grads is None:
            self._flat = None
            if self.fused:
                self._require_flat(self.params, at_step=True)
            elif self._why_not_flat(self.params, at_step=True) is not None:
                return None  # the per-parameter path skips, or names, the culprit
            self._flat = _Flat.pack(self, names)
            grads = self._packed_grads()
            assert grads is not None  # just packed, every grad checked
        bk = self._flat.backend
        return self._flat, bk.concatenate(grads, None)  # None: flattened, in one call

    def _why_not_flat(self, params: list[Tensor], at_step: bool) -> str | None:
        """Why ``params`` cannot share one flat buffer (``None``: they can): mixed devices
        or dtypes; and, ``at_step``, a missing or misshaped gradient or unequal step counts."""
        first = params[0]
        for i, p in enumerate(params):
            if p.device != first.device or p.dtype != first.dtype:
                return (f"parameter {i} is {p.dtype} on {p.device}, parameter 0 is "
                        f"{first.dtype} on {first.device} (fused=None updates mixed ones one "
                        f"by one)")
            if not at_step:
                continue
            if p.grad is None:
                return f"parameter {i} has no gradient (fused=None skips parameters without one)"
            if p.grad.shape != p.shape or p.grad.device != p.device:
                return (f"parameter {i} is {p.shape} on {p.device} but its grad is "
                        f"{p.grad.shape} on {p.grad.device}")
        steps = self._step_counts() if at_step else []
        if len(steps) > 1:
            return f"the parameters have taken different numbers of steps ({steps})"
        return None

    def _require_flat(self, params: list[Tensor], at_step: bool) -> None:
        """For ``fused=True``: ``_why_not_flat`` as a ``ValueError``."""
        why = self._why_not_flat(params, at_step)
        if why is not None:
            where = f"{type(self).__name__}(fused=True){'.step' if at_step else ''}"
            raise ValueError(f"{where}: {why}; the fused path updates every parameter at "
                             f"once, in one buffer")

    def _step_counts(self) -> list[int]:
        """The distinct step counts of the parameters (those not stepped yet count 0);
        empty for optimizers that count no steps."""
        if not self.state_ints:
            return []
        steps = {entry["step"] for entry in self.state.values()}
        if len(self.state) < len(self.params):
            steps.add(0)
        return sorted(steps)

    def _packed_grads(self) -> list[Array] | None:
        """The gradients' arrays, if every parameter has a gradient of its shape and
        still lives in the packed buffer; else ``None``."""
        if self._flat is None:
            return None
        grads = []
        for p, view in zip(self.params, self._flat.views):
            g = p.grad
            if g is None or p._array is not view:
                return None
            g = g._array
            if g.shape != view.shape:
                return None  # the per-parameter path names the culprit
            grads.append(g)
        return grads

    # -- helpers for step() ---------------------------------------------------------
    def _each_parameter(self) -> Iterator[tuple[int, Tensor, dict[str, Any], Array, Array]]:
        """The per-parameter path's loop, written once: (index, parameter, its
        hyper-parameters, its writeable array, its gradient's array) for every parameter
        that has a gradient (the others are skipped, as in PyTorch)."""
        for i, (p, h) in enumerate(zip(self.params, self._hyper_of())):
            if p.grad is not None:
                data, grad = self._arrays(i, p)
                yield i, p, h, data, grad

    def _arrays(self, i: int, p: Tensor) -> tuple[Array, Array]:
        """``p``'s writeable array and its gradient's array, after checking they match."""
        data, grad = p._array, p.grad._array
        if grad.shape != data.shape:
            raise ValueError(f"{type(self).__name__}.step: parameter {i} has shape "
                             f"{tuple(data.shape)} but its grad has shape {tuple(grad.shape)}")
        if p.grad.device is not p.device and p.grad.device != p.device:
            raise ValueError(f"{type(self).__name__}.step: parameter {i} is on {p.device} but its "
                             f"grad is on {p.grad.device}")
        flags = getattr(data, "flags", None)
        if (flags is not None and not getattr(flags, "writeable", True)) \
                or 0 in getattr(data, "strides", ()):
            # A read-only or broadcast view (several elements share memory):
            # give the parameter its own array once, then update that in place.
            data = p._array = p.device.backend.copy(data)
        return data, grad

    def _update_failed(self, i: int, p: Tensor, exc: Exception) -> ValueError:
        return ValueError(f"{type(self).__name__}.step: updating parameter {i} ({p.dtype}"
                          f"{list(p.shape)}) with its grad ({p.grad.dtype}) failed: {exc}")

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
        self._flat = None  # the packed buffers hold the old state

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


class _Flat:
    """One device's parameters (and named state arrays) packed into flat buffers."""

    def __init__(self, backend: Any, params: Array, views: list[Array],
                 state: dict[str, Array], state_views: dict[str, list[Array]]) -> None:
        self.backend = backend
        self.params = params
        self.views = views
        self.state = state
        self.state_views = state_views
        self.offsets = [0]
        for view in views:
            self.offsets.append(self.offsets[-1] + int(np.prod(view.shape)))

    def window(self, flat: Array | None, first: int, end: int) -> Array | None:
        """The part of a flat buffer holding parameters ``first..end-1`` (a view)."""
        if flat is None or (first == 0 and end == len(self.views)):
            return flat
        return self.backend.getitem(flat, slice(self.offsets[first], self.offsets[end]))

    @classmethod
    def pack(cls, opt: Optimizer, names: tuple[str, ...]) -> _Flat:
        params = opt.params  # one device, dtype and step count: Optimizer._why_not_flat
        first = params[0]
        bk, dtype = first.device.backend, first.dtype
        total = sum(int(np.prod(p.shape)) for p in params)

        def packed(arrays: list[Array]) -> tuple[Array, list[Array]]:
            flat = bk.full((total,), 0.0, dtype)
            views, offset = [], 0
            for p, a in zip(params, arrays):
                n = int(np.prod(p.shape))
                window = slice(offset, offset + n)
                if a is not None:
                    bk.setitem(flat, window, bk.reshape(a, (-1,)))
                views.append(bk.reshape(bk.getitem(flat, window), p.shape))
                offset += n
            return flat, views

        flat_params, views = packed([p._array for p in params])
        state, state_views = {}, {}
        for name in names:
            state[name], state_views[name] = packed(
                [opt.state.get(i, {}).get(name) for i in range(len(params))])
        step = (opt._step_counts() or [0])[0]
        for i, p in enumerate(params):
            p._array = views[i]
            entry = opt.state.setdefault(i, {})
            for name in names:
                entry[name] = state_views[name][i]
            for name in opt.state_ints:
                entry[name] = step
        return cls(bk, flat_params, views, state, state_views)


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
