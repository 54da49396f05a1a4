"""Gradient clipping and learning-rate schedules."""

from __future__ import annotations

import math

import needle as ndl
import numpy as np
import pytest
from needle.optim import SGD, Adam, CosineAnnealingLR, StepLR, clip_grad_norm


def params_with_grads(device, grads, dtype="float64"):
    ps = []
    for g in grads:
        p = ndl.Tensor(np.zeros_like(g), device=device, dtype=dtype)
        p.grad = ndl.Tensor(g, device=device, dtype=dtype, requires_grad=False)
        ps.append(p)
    return ps


GRADS = [np.array([[3.0, 0.0], [0.0, 4.0]]), np.array([12.0])]  # joint norm 13


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clip_scales_to_max_norm_without_touching_old_grads(device, dtype):
    ps = params_with_grads(device, GRADS, dtype)
    old = [p.grad for p in ps]
    norm = clip_grad_norm(ps, max_norm=6.5)
    assert norm == pytest.approx(13.0, rel=1e-12)
    for p, g_old, g in zip(ps, old, GRADS):
        assert p.grad is not g_old and p.grad.dtype == np.dtype(dtype) and p.grad.device == device
        np.testing.assert_allclose(p.grad.numpy(), g * 0.5, rtol=1e-6)
        np.testing.assert_array_equal(g_old.numpy(), g)  # not scaled in place
    total = math.sqrt(sum(float((p.grad.numpy().astype(float) ** 2).sum()) for p in ps))
    assert total == pytest.approx(6.5, rel=1e-6)


def test_clip_within_bound_changes_nothing(device):
    ps = params_with_grads(device, GRADS)
    old = [p.grad for p in ps]
    assert clip_grad_norm(ps, max_norm=13.5) == pytest.approx(13.0)
    assert all(p.grad is g for p, g in zip(ps, old))


def test_clip_handles_read_only_broadcast_grads_and_missing_grads():
    w = ndl.Tensor(np.zeros((3, 4)))
    frozen = ndl.Tensor(np.zeros(2))
    w.sum().backward()  # the grad is a broadcast (read-only) view of one value
    assert clip_grad_norm([w, frozen], 1.0) == pytest.approx(math.sqrt(12))
    assert frozen.grad is None
    np.testing.assert_allclose(w.grad.numpy(), np.full((3, 4), 1 / math.sqrt(12)), rtol=1e-6)


def test_clip_float32_norm_does_not_overflow():
    (p,) = params_with_grads(ndl.cpu(), [np.full(4, 1e30)], "float32")
    assert clip_grad_norm([p], 1.0) == pytest.approx(2e30, rel=1e-6)
    np.testing.assert_allclose(p.grad.numpy(), np.full(4, 0.5), rtol=1e-5)


def test_clip_nonfinite_and_bad_max_norm():
    (p,) = params_with_grads(ndl.cpu(), [np.array([np.inf, 1.0])])
    with pytest.raises(ValueError, match="total gradient norm is inf"):
        clip_grad_norm([p], 1.0, error_if_nonfinite=True)
    grad = p.grad
    assert math.isinf(clip_grad_norm([p], 1.0))
    assert p.grad is grad  # no finite scale: grads left as they are
    for bad in (-1.0, math.nan, "1"):
        with pytest.raises(ValueError, match=f"invalid max_norm: {bad!r}"):
            clip_grad_norm([p], bad)


def test_step_lr_schedule_and_its_effect_on_sgd(device):
    w = ndl.Tensor(np.zeros(2), device=device, dtype="float64")
    opt = SGD([w], lr=1.0)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        w.grad = ndl.Tensor(np.ones(2), device=device, dtype="float64")
        before = w.numpy().copy()
        opt.step()
        lrs.append(float(before[0] - w.numpy()[0]))  # what the step actually used
        sched.step()
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert opt.lr == sched.get_last_lr() == 0.25 and sched(9) == 1.0 * 0.5**4


def test_cosine_schedule_values():
    opt = Adam([ndl.Tensor([1.0])], lr=0.1)
    sched = CosineAnnealingLR(opt, T_max=4, eta_min=0.02)
    got = [sched.step() for _ in range(8)]
    want = [0.02 + 0.08 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(1, 9)]
    assert got == pytest.approx(want, rel=1e-15, abs=1e-15)
    assert got[3] == pytest.approx(0.02) and got[7] == pytest.approx(0.1)  # PyTorch: rises after T_max
    assert sched(0) == 0.1 and sched(2) == pytest.approx(0.06)


def test_scheduler_state_round_trip():
    opt = SGD([ndl.Tensor([1.0])], lr=0.3)
    sched = CosineAnnealingLR(opt, T_max=10)
    for _ in range(3):
        sched.step()
    state = sched.state_dict()
    opt2 = SGD([ndl.Tensor([1.0])], lr=0.3)
    sched2 = CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(state)
    assert opt2.lr == opt.lr and sched2.step() == sched.step()
    with pytest.raises(ValueError, match="invalid last_epoch: -1"):
        sched2.load_state_dict({"base_lr": 0.3, "last_epoch": -1})


@pytest.mark.parametrize("make, message", [
    (lambda o: StepLR(o, step_size=0), "invalid step_size: 0"),
    (lambda o: StepLR(o, step_size=2.5), "invalid step_size: 2.5"),
    (lambda o: StepLR(o, step_size=1, gamma=-0.5), "invalid gamma: -0.5"),
    (lambda o: CosineAnnealingLR(o, T_max=0), "invalid T_max: 0"),
    (lambda o: CosineAnnealingLR(o, T_max=5, eta_min=-1.0), "invalid eta_min: -1.0"),
])
def test_bad_schedule_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make(SGD([ndl.Tensor([1.0])]))
    with pytest.raises(TypeError, match="needs an optimizer"):
        StepLR(object(), step_size=1)
