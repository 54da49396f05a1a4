"""The optimizers' two paths (one call per parameter, or one fused call over concatenated
parameters) over one state layout: each is really taken when asked for, they give the
same numbers, and replacing, reloading or moving parameters between steps changes neither
the path nor the result. Parameters never share storage."""

from __future__ import annotations

import importlib

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest
from needle.optim import SGD, Adam, AdamW
from needle_backend_cpu import CPUBackend

device_mod = importlib.import_module("needle.device")  # ndl.device is the function

F64 = "float64"
SHAPES = [(3, 4), (1, 4), (5,), (2, 2, 2)]
PATHS = {"for-loop": {"foreach": False}, "fused": {"fused": True}, "foreach": {"foreach": True},
         "default": {}}
OPTIMIZERS = {
    "sgd": lambda ps, **kw: SGD(ps, lr=0.1, weight_decay=0.01, **kw),
    "sgd-momentum": lambda ps, **kw: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, **kw),
    "adam": lambda ps, **kw: Adam(ps, lr=0.05, weight_decay=0.01, **kw),
    "adamw": lambda ps, **kw: AdamW(ps, lr=0.05, weight_decay=0.1, **kw),
}


def make_params(device, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [ndl.Tensor(rng.standard_normal(s), device=device, dtype=F64) for s in shapes]


def grad_of(k, shape, step):
    return np.cos(np.arange(int(np.prod(shape))) + 3 * step + k).reshape(shape)


def set_grads(params, step):
    for k, p in enumerate(params):
        p.grad = ndl.Tensor(grad_of(k, p.shape, step), device=p.device, dtype=p.dtype)


def reference(kind, values, steps, skip=(), replace=None):
    """NumPy's trajectory of each optimizer in OPTIMIZERS (``skip``: (step, k) without grad;
    ``replace``: (step, k) -> the value parameter k is given before that step)."""
    values = [v.copy() for v in values]
    state = [{"u": np.zeros_like(v), "m": np.zeros_like(v), "v": np.zeros_like(v), "t": 0}
             for v in values]
    for step in range(steps):
        for (at, k), value in (replace or {}).items():
            if at == step:
                values[k][...] = value
        for k, theta in enumerate(values):
            if (step, k) in skip:
                continue
            g, s = grad_of(k, theta.shape, step), state[k]
            if kind.startswith("sgd"):
                mu = 0.9 if kind == "sgd-momentum" else 0.0
                s["u"] = mu * s["u"] + (1 - mu) * (g + 0.01 * theta)
                theta -= 0.1 * s["u"]
                continue
            if kind == "adamw":
                theta *= 1 - 0.05 * 0.1
            else:
                g = g + 0.01 * theta
            s["t"] += 1
            s["m"] = 0.9 * s["m"] + 0.1 * g
            s["v"] = 0.999 * s["v"] + 0.001 * g * g
            theta -= 0.05 * (s["m"] / (1 - 0.9 ** s["t"])) / (
                np.sqrt(s["v"] / (1 - 0.999 ** s["t"])) + 1e-8)
    return values


@pytest.fixture
def calls(monkeypatch):
    """The shapes of the parameter arrays each update kernel call received, per device."""
    seen: list[tuple[str, tuple[int, ...]]] = []

    def record(device):
        backend = device.backend
        for name in ("sgd_update", "adam_update"):
            kernel = getattr(backend, name)

            def wrapped(param, *args, _kernel=kernel, _name=name):
                seen.append((_name, tuple(param.shape)))
                return _kernel(param, *args)

            monkeypatch.setattr(backend, name, wrapped)
        return seen

    return record


@pytest.fixture
def second_cpu():
    """A second device (the CPU backend under another name), removed again afterwards."""
    class OtherCPU(CPUBackend):
        name = "cpu2"

    device_mod.REGISTRY.register(OtherCPU())
    try:
        yield ndl.device("cpu2")
    finally:
        device_mod.REGISTRY._backends.pop("cpu2", None)
        device_mod._DEVICES.pop("cpu2", None)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_the_chosen_path_runs_and_matches_numpy(device, calls, kind, path):
    params = make_params(device)
    start = [p.numpy().copy() for p in params]
    opt = OPTIMIZERS[kind](params, **PATHS[path])
    seen = calls(device)
    for t in range(4):
        set_grads(params, t)
        opt.step()
    fused = path != "for-loop"
    assert opt.fused is fused
    kernel = "sgd_update" if kind.startswith("sgd") else "adam_update"
    total = sum(int(np.prod(s)) for s in SHAPES)
    per_step = [(kernel, (total,))] if fused else [(kernel, s) for s in SHAPES]
    assert seen == per_step * 4, f"{path}: the kernel was called on {seen[:len(SHAPES)]}"
    for got, want in zip(params, reference(kind, start, 4)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_switching_paths_between_steps_continues_the_same_state(device, kind):
    """One state layout: a step of either path continues from the other's state."""
    params = make_params(device)
    start = [p.numpy().copy() for p in params]
    opt = OPTIMIZERS[kind](params)
    for t in range(4):
        opt.fused = t % 2 == 0
        set_grads(params, t)
        opt.step()
    for got, want in zip(params, reference(kind, start, 4)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_parameters_keep_their_own_arrays(device, fused):
    params = make_params(device)
    arrays = [p._array for p in params]
    opt = Adam(params, fused=fused)
    for t in range(2):
        set_grads(params, t)
        opt.step()
    assert all(p._array is a for p, a in zip(params, arrays)), "updated in place, not replaced"
    if device.name == "cpu":
        for i, a in enumerate(arrays):
            assert not any(np.shares_memory(a, b) for b in arrays[i + 1:])
            assert not any(np.shares_memory(a, s) for entry in opt.state.values()
                           for s in entry.values() if not isinstance(s, int))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_replacing_a_parameters_data_between_steps(device, calls, kind, fused):
    params = make_params(device)
    start = [p.numpy().copy() for p in params]
    opt = OPTIMIZERS[kind](params, fused=fused)
    seen = calls(device)
    new = np.full((1, 4), 7.0)
    for t in range(3):
        if t == 1:
            params[1].data = ndl.Tensor(new, device=device, dtype=F64)
        set_grads(params, t)
        opt.step()
    assert len(seen) == (3 if fused else 3 * len(SHAPES)), f"the path changed: {seen}"
    for got, want in zip(params, reference(kind, start, 3, replace={(1, 1): new})):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_a_parameter_of_another_shape_is_named(device):
    params = make_params(device)
    opt = Adam(params)
    set_grads(params, 0)
    opt.step()
    params[2].data = ndl.Tensor(np.zeros(6), device=device, dtype=F64)
    set_grads(params, 1)
    with pytest.raises(ValueError, match=r"parameter 2 now has shape \(6,\) but its optimizer "
                                         r"state 'm' has shape \(5,\)"):
        opt.step()


@pytest.mark.parametrize("fused", [True, False])
def test_a_missing_grad_keeps_per_parameter_steps(device, fused):
    params = make_params(device)
    start = [p.numpy().copy() for p in params]
    opt = Adam(params, lr=0.05, weight_decay=0.01, fused=fused)
    for t in range(3):
        set_grads(params, t)
        if t == 0:
            params[2].grad = None
        opt.step()
        if t == 0:
            assert 2 not in opt.state and opt.state[0]["step"] == 1
    assert opt.state[2]["step"] == 2 and opt.state[0]["step"] == 3
    for got, want in zip(params, reference("adam", start, 3, skip={(0, 2)})):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_the_fused_path_splits_runs_where_it_must(device, calls):
    """Another group's settings, another dtype or a missing grad end a run: each run is one
    call (a run of one parameter updates it directly), and the numbers are the for-loop's."""
    def train(fused):
        ps = make_params(device) + [ndl.Tensor(np.ones(3), device=device, dtype="float32")]
        groups = [{"params": ps[:2]}, {"params": ps[2:4], "lr": 0.2}, {"params": ps[4:]}]
        opt = SGD(groups, lr=0.1, momentum=0.5, fused=fused)
        per_step = []
        for t in range(3):
            set_grads(ps, t)
            if t == 1:
                ps[0].grad = None
            start = len(seen)
            opt.step()
            per_step.append([shape for _, shape in seen[start:]])
        return ps, per_step

    seen = calls(device)
    fused_ps, fused_calls = train(True)
    loop_ps, loop_calls = train(False)
    assert fused_calls == [[(16,), (13,), (3,)], [(1, 4), (13,), (3,)], [(16,), (13,), (3,)]]
    assert loop_calls[0] == [*SHAPES, (3,)]
    for a, b in zip(fused_ps, loop_ps):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_load_state_dict_mid_training(device, fused):
    params = make_params(device)
    opt = Adam(params, lr=0.05, fused=fused)
    set_grads(params, 0)
    opt.step()
    saved_state = opt.state_dict()
    saved_values = [p.numpy().copy() for p in params]
    for t in (1, 2):
        set_grads(params, t)
        opt.step()
    first = [p.numpy().copy() for p in params]
    for p, v in zip(params, saved_values):  # a new array for each: what Module.load_state_dict does
        p.data = ndl.Tensor(v, device=device, dtype=F64)
    opt.load_state_dict(saved_state)
    for t in (1, 2):
        set_grads(params, t)
        opt.step()
    for a, b in zip(first, params):
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_module_to_mid_training(second_cpu, calls, kind, fused):
    """Moving the model between steps moves the optimizer's state with it."""
    def build():
        np.random.seed(0)
        model = nn.Sequential(nn.Linear(3, 4, dtype=F64), nn.ReLU(), nn.Linear(4, 2, dtype=F64))
        return model, OPTIMIZERS[kind](model.parameters(), fused=fused)

    (moved, moved_opt), (stay, stay_opt) = build(), build()
    x = np.random.default_rng(3).standard_normal((5, 3))
    seen = calls(second_cpu)
    for t in range(4):
        if t == 2:
            moved.to(second_cpu)
        for model, opt in ((moved, moved_opt), (stay, stay_opt)):
            opt.reset_grad()
            dev = model.parameters()[0].device
            (model(ndl.Tensor(x * (t + 1), device=dev, dtype=F64)) ** 2).sum().backward()
            opt.step()
    assert all(p.device == second_cpu for p in moved.parameters())
    assert all(s.device == second_cpu if hasattr(s, "device") else True
               for entry in moved_opt.state_dict()["state"].values() for s in entry.values())
    assert len(seen) == (2 if fused else 2 * 4), "two steps on cpu2, by the chosen path"
    for a, b in zip(moved.parameters(), stay.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_foreach_and_fused_are_checked():
    w = ndl.Tensor(np.ones(2), dtype=F64)
    assert SGD([w]).fused and SGD([w], foreach=True, fused=True).fused
    assert not Adam([w], fused=False).fused and not AdamW([w], foreach=False).fused
    with pytest.raises(ValueError, match=r"SGD: foreach=True and fused=False ask for different"):
        SGD([w], foreach=True, fused=False)
    with pytest.raises(TypeError, match=r"Adam: fused must be True, False or None, got 'yes'"):
        Adam([w], fused="yes")
