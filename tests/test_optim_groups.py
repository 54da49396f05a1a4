"""AdamW, ``betas=`` and parameter groups: NumPy references, the fused path kept, resumable
state, schedules, and the errors for bad groups."""

from __future__ import annotations

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest
from needle import optim

F64 = "float64"


def _model(device, seed=0):
    np.random.seed(seed)
    return nn.Sequential(nn.Linear(3, 4, device=device, dtype=F64), nn.ReLU(),
                         nn.Linear(4, 2, device=device, dtype=F64))


def _grads(model, rng, device):
    for p in model.parameters():
        p.grad = ndl.Tensor(rng.standard_normal(p.shape), device=device, dtype=F64)


def adamw_ref(theta, grads, lr, b1, b2, eps, wd):
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, 1):
        theta = theta * (1 - lr * wd)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        theta = theta - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return theta


def test_adamw_matches_the_formula(device):
    rng = np.random.default_rng(1)
    w = ndl.Tensor(rng.standard_normal((3, 4)), device=device, dtype=F64)
    start = w.numpy().copy()
    opt = optim.AdamW([w], lr=0.1, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3)
    grads = [rng.standard_normal((3, 4)) for _ in range(4)]
    for g in grads:
        w.grad = ndl.Tensor(g, device=device, dtype=F64)
        opt.step()
    np.testing.assert_allclose(w.numpy(), adamw_ref(start, grads, 0.1, 0.8, 0.95, 1e-6, 0.3),
                               rtol=1e-12)


def test_adamw_defaults_and_zero_decay_is_adam(device):
    w = ndl.Tensor(np.ones(3), device=device, dtype=F64)
    opt = optim.AdamW([w])
    assert (opt.lr, opt.betas, opt.eps, opt.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 1e-2)
    rng = np.random.default_rng(2)
    a, b = (ndl.Tensor(rng.standard_normal(5), device=device, dtype=F64) for _ in range(2))
    b.data = a.detach() * 1
    adam, adamw = optim.Adam([a], lr=0.05), optim.AdamW([b], lr=0.05, weight_decay=0.0)
    for _ in range(3):
        g = rng.standard_normal(5)
        a.grad = b.grad = ndl.Tensor(g, device=device, dtype=F64)
        adam.step()
        adamw.step()
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-14)


def test_betas_is_beta1_beta2():
    w = ndl.Tensor(np.ones(2), dtype=F64)
    opt = optim.Adam([w], betas=(0.5, 0.6))
    assert (opt.beta1, opt.beta2) == (0.5, 0.6) and opt.betas == (0.5, 0.6)
    opt.betas = (0.7, 0.8)
    assert opt.beta1 == 0.7 and opt.state_dict()["hyper"]["beta2"] == 0.8
    with pytest.raises(ValueError, match="not both"):
        optim.Adam([w], beta1=0.5, betas=(0.5, 0.6))
    with pytest.raises(ValueError, match=r"betas must be a pair"):
        optim.AdamW([w], betas=(0.5,))
    with pytest.raises(ValueError, match=r"AdamW: invalid beta2: 1.0"):
        optim.AdamW([w], betas=(0.5, 1.0))


@pytest.mark.parametrize("make", [
    lambda ps, **kw: optim.SGD(ps, momentum=0.5, **kw),
    lambda ps, **kw: optim.Adam(ps, **kw),
    lambda ps, **kw: optim.AdamW(ps, **kw),
])
def test_groups_equal_separate_optimizers_and_keep_the_fused_path(device, make):
    """Two groups with their own lr and weight decay give the numbers of two optimizers,
    one per group; the packed buffers survive the steps (the fused path ran)."""
    grouped, first, second = _model(device), _model(device), _model(device)
    ps = grouped.parameters()
    opt = make([{"params": ps[:2], "lr": 0.1}, {"params": ps[2:], "weight_decay": 0.2}],
               lr=0.03)
    refs = [make(first.parameters()[:2], lr=0.1), make(second.parameters()[2:], lr=0.03,
                                                         weight_decay=0.2)]
    for step in range(3):
        for m in (grouped, first, second):
            _grads(m, np.random.default_rng(step), device)
        opt.step()
        for ref in refs:
            ref.step()
        assert opt._flat is not None
    for got, want in zip(ps, first.parameters()[:2] + second.parameters()[2:]):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_per_parameter_path_uses_each_groups_settings(device):
    """A parameter without a grad forces the per-parameter path; groups still apply."""
    w1, w2, w3 = (ndl.Tensor(np.ones(2), device=device, dtype=F64) for _ in range(3))
    opt = optim.SGD([{"params": [w1], "lr": 1.0}, {"params": [w2, w3]}], lr=0.5)
    w1.grad = w2.grad = ndl.Tensor(np.ones(2), device=device, dtype=F64)
    opt.step()
    np.testing.assert_allclose([w1.numpy(), w2.numpy(), w3.numpy()], [[0, 0], [0.5, 0.5], [1, 1]])


def test_named_parameters_and_a_decay_free_group(device):
    """PyTorch's common recipe: no weight decay on biases, groups built from names."""
    model = _model(device)
    named = list(model.named_parameters())
    opt = optim.AdamW([{"params": [(n, p) for n, p in named if "bias" not in n]},
                       {"params": [(n, p) for n, p in named if "bias" in n],
                        "weight_decay": 0.0}], lr=0.01, weight_decay=0.5)
    assert opt.param_groups[1]["param_names"] == ["modules.0.bias", "modules.2.bias"]
    assert optim.SGD(model.named_parameters()).params == model.parameters()
    for p in model.parameters():
        p.grad = ndl.Tensor(np.zeros(p.shape), device=device, dtype=F64)
    before = [p.numpy().copy() for p in model.parameters()]
    opt.step()  # a zero gradient: only the decay moves anything
    for (name, p), old in zip(named, before):
        expected = old if "bias" in name else old * (1 - 0.01 * 0.5)
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-14)


def test_editing_a_group_between_steps(device):
    w = ndl.Tensor(np.ones(1), device=device, dtype=F64)
    opt = optim.SGD([{"params": [w]}], lr=0.1)
    w.grad = ndl.Tensor(np.ones(1), device=device, dtype=F64)
    opt.step()
    opt.param_groups[0]["lr"] = 1.0  # PyTorch's way of changing one group's rate
    opt.step()
    np.testing.assert_allclose(w.numpy(), [1 - 0.1 - 1.0])


def test_group_errors():
    a, b = ndl.Tensor(np.ones(2)), ndl.Tensor(np.ones(2))
    with pytest.raises(ValueError, match=r"SGD: param group 1 has unknown hyper-parameter 'betas'"):
        optim.SGD([{"params": [a]}, {"params": [b], "betas": (0.9, 0.9)}])
    with pytest.raises(ValueError, match=r"SGD: param group 0 has no 'params' key"):
        optim.SGD([{"lr": 0.1}])
    with pytest.raises(ValueError, match=r"a parameter is in both param group 0 and 1"):
        optim.Adam([{"params": [a]}, {"params": [a, b]}])
    with pytest.raises(ValueError, match=r"SGD: invalid lr: -1"):
        optim.SGD([{"params": [a], "lr": -1}])
    with pytest.raises(TypeError, match=r"mixes parameter-group dicts with Tensors"):
        optim.SGD([a, {"params": [b]}])
    with pytest.raises(TypeError, match=r"param group 0\[1\] is a str, not a Tensor"):
        optim.SGD([{"params": [a, "b"]}])
    with pytest.raises(TypeError, match=r"got a single Tensor"):
        optim.SGD(a)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([{"params": []}])
    with pytest.raises(ValueError, match=r"betas must be a tuple of 2 numbers"):
        optim.Adam([{"params": [a], "betas": 0.9}])
    opt = optim.Adam([{"params": [a], "betas": (0.5, 0.6)}, {"params": [b]}])
    assert opt.param_groups[0]["beta1"] == 0.5 and "beta1" not in opt.param_groups[1]


def test_group_state_survives_a_checkpoint(device, tmp_path):
    model = _model(device)
    ps = model.parameters()
    opt = optim.AdamW([{"params": ps[:2], "lr": 0.2}, {"params": ps[2:]}], lr=0.01)
    _grads(model, np.random.default_rng(0), device)
    opt.step()
    ndl.save(opt.state_dict(), tmp_path / "opt.npz")
    twin_model = _model(device)
    twin_model.load_state_dict(model.state_dict())
    tp = twin_model.parameters()
    twin = optim.AdamW([{"params": tp[:2]}, {"params": tp[2:]}], lr=0.01)
    twin.load_state_dict(ndl.load(tmp_path / "opt.npz", device=device))
    assert twin.param_groups[0]["lr"] == 0.2
    for m in (model, twin_model):
        _grads(m, np.random.default_rng(1), device)
    opt.step()
    twin.step()
    for p, q in zip(ps, tp):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-12)
    plain = optim.AdamW(twin_model.parameters(), lr=0.01)
    assert "groups" not in plain.state_dict()  # one plain group: the snapshot is unchanged
    with pytest.raises(ValueError, match=r"parameter groups .* do not match this optimizer's "
                                         r"\(1 groups of \[4\] parameters\)"):
        plain.load_state_dict(opt.state_dict())


def test_schedules_move_groups_with_their_own_lr():
    a, b = ndl.Tensor(np.ones(1)), ndl.Tensor(np.ones(1))
    opt = optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b]}], lr=0.1)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    sched.step()
    assert opt.lr == pytest.approx(0.025) and opt.param_groups[0]["lr"] == pytest.approx(0.25)
    cos = optim.CosineAnnealingLR(optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b]}],
                                            lr=0.1), T_max=2, eta_min=0.05)
    cos.step()
    assert cos.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 + 0.95 / 2)
    state = sched.state_dict()
    assert state["group_base_lrs"] == {0: 1.0}
    fresh = optim.StepLR(optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b]}], lr=0.1), 1, 0.5)
    fresh.load_state_dict(state)
    assert fresh.optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="group_base_lrs"):
        optim.StepLR(optim.SGD([a], lr=0.1), 1).load_state_dict(state)


def test_add_param_group(device):
    a, b = (ndl.Tensor(np.ones(2), device=device, dtype=F64) for _ in range(2))
    opt = optim.Adam([a], lr=0.1)
    a.grad = ndl.Tensor(np.ones(2), device=device, dtype=F64)
    opt.step()
    opt.add_param_group({"params": [b], "lr": 0.5})
    assert opt.params == [a, b] and opt.param_groups[1]["lr"] == 0.5
    b.grad = ndl.Tensor(np.ones(2), device=device, dtype=F64)
    opt.step()  # b's first Adam step moves it by lr: bias correction makes m̂/√v̂ = 1
    np.testing.assert_allclose(b.numpy(), [0.5, 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="already in another group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="invalid lr"):
        opt.add_param_group({"params": [ndl.Tensor([1.0])], "lr": -2})
    with pytest.raises(TypeError, match="expects a dict"):
        opt.add_param_group([b])
