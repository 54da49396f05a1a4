"""The optimizers' fused path packs every parameter into one buffer; it must give the
same numbers as the per-parameter path and notice when a parameter is replaced."""

import needle as ndl
import numpy as np
import pytest
from needle.optim import SGD, Adam


def make_params(device, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (1, 4), (5,), (2, 2, 2)]
    return [ndl.Tensor(rng.standard_normal(s), device=device, dtype="float64") for s in shapes]


def set_grads(params, step):
    for k, p in enumerate(params):
        g = np.cos(np.arange(int(np.prod(p.shape))) + 3 * step + k).reshape(p.shape)
        p.grad = ndl.Tensor(g, device=p.device, dtype="float64", requires_grad=False)


def numpy_adam(values, steps, lr, b1, b2, eps, wd):
    m = [np.zeros_like(v) for v in values]
    v2 = [np.zeros_like(v) for v in values]
    values = [v.copy() for v in values]
    for t in range(1, steps + 1):
        for k, theta in enumerate(values):
            g = np.cos(np.arange(theta.size) + 3 * (t - 1) + k).reshape(theta.shape) + wd * theta
            m[k] = b1 * m[k] + (1 - b1) * g
            v2[k] = b2 * v2[k] + (1 - b2) * g * g
            theta -= lr * (m[k] / (1 - b1**t)) / (np.sqrt(v2[k] / (1 - b2**t)) + eps)
    return values


def test_fused_adam_matches_numpy_over_several_parameters(device):
    params = make_params(device)
    start = [p.numpy().copy() for p in params]
    opt = Adam(params, lr=0.05, weight_decay=0.01)
    for t in range(4):
        set_grads(params, t)
        opt.step()
    assert opt._flat is not None, "all grads present, one device and dtype: the fused path runs"
    for got, want in zip(params, numpy_adam(start, 4, 0.05, 0.9, 0.999, 1e-8, 0.01)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_fused_sgd_matches_per_parameter_path(device, momentum):
    fused, single = make_params(device), make_params(device)
    # one optimizer per parameter never packs more than that parameter
    opt_fused = SGD(fused, lr=0.1, momentum=momentum, weight_decay=0.01)
    opts_single = [SGD([p], lr=0.1, momentum=momentum, weight_decay=0.01) for p in single]
    for t in range(3):
        set_grads(fused, t)
        set_grads(single, t)
        opt_fused.step()
        for opt in opts_single:
            opt.step()
    for a, b in zip(fused, single):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_replacing_a_parameter_array_is_noticed(device):
    params = make_params(device)
    opt = SGD(params, lr=0.5)
    set_grads(params, 0)
    opt.step()
    params[1].data = ndl.Tensor(np.full((1, 4), 7.0), device=device, dtype="float64")
    set_grads(params, 1)
    grad = params[1].grad.numpy().copy()
    opt.step()
    np.testing.assert_allclose(params[1].numpy(), 7.0 - 0.5 * grad, rtol=1e-12)


def test_a_missing_grad_falls_back_and_keeps_per_parameter_steps(device):
    params = make_params(device)
    opt = Adam(params, lr=0.1)
    set_grads(params, 0)
    params[2].grad = None
    opt.step()
    assert 2 not in opt.state and opt.state[0]["step"] == 1
    set_grads(params, 1)
    opt.step()  # unequal step counts: the per-parameter path keeps each correction right
    assert opt.state[2]["step"] == 1 and opt.state[0]["step"] == 2
    assert all(np.all(np.isfinite(p.numpy())) for p in params)


def test_load_state_dict_into_a_packed_optimizer_uses_the_loaded_state(device):
    params = make_params(device)
    opt = Adam(params, lr=0.05)
    set_grads(params, 0)
    opt.step()  # packs the parameters and m/v
    saved_state = opt.state_dict()
    saved_values = [p.numpy().copy() for p in params]
    for t in (1, 2):
        set_grads(params, t)
        opt.step()
    first = [p.numpy().copy() for p in params]
    for p, v in zip(params, saved_values):  # in place: the packing itself stays valid
        bk = p.device.backend
        bk.setitem(p.cached_data, ..., bk.array(v, p.dtype))
    opt.load_state_dict(saved_state)
    for t in (1, 2):
        set_grads(params, t)
        opt.step()
    for a, b in zip(first, params):
        np.testing.assert_array_equal(a, b.numpy())
