"""needle.optim SGD and Adam: trajectories against NumPy, in-place updates, resumable state."""

from __future__ import annotations

import math

import needle as ndl
import needle.autograd
import numpy as np
import pytest
from needle.optim import SGD, Adam

A = np.array([[1.0, 2.0, 0.5], [3.0, 0.25, 1.5]])
B = np.array([[0.5, -1.0, 2.0], [-0.3, 0.7, -2.0]])
THETA0 = np.array([[0.3, -0.2, 1.0], [-1.5, 0.8, 0.1]])


def quadratic_grad(theta: np.ndarray) -> np.ndarray:
    """Gradient of 0.5*sum(A*θ²) + sum(B*θ): depends on θ, so a wrong step shows up later."""
    return A * theta + B


def backward_quadratic(w: ndl.Tensor) -> None:
    a = ndl.Tensor(A, device=w.device, dtype=w.dtype, requires_grad=False)
    b = ndl.Tensor(B, device=w.device, dtype=w.dtype, requires_grad=False)
    ((a * w * w).sum() * 0.5 + (b * w).sum()).backward()


def sgd_reference(steps, lr, momentum, weight_decay):
    theta, u, out = THETA0.copy(), np.zeros_like(THETA0), []
    for _ in range(steps):
        g = quadratic_grad(theta) + weight_decay * theta
        u = momentum * u + (1 - momentum) * g
        theta = theta - lr * u
        out.append(theta)
    return out


def adam_reference(steps, lr, beta1, beta2, eps, weight_decay):
    theta, m, v, out = THETA0.copy(), np.zeros_like(THETA0), np.zeros_like(THETA0), []
    for t in range(1, steps + 1):
        g = quadratic_grad(theta) + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta)
    return out


def run(opt_cls, device, steps, dtype="float64", **kwargs):
    w = ndl.Tensor(THETA0, device=device, dtype=dtype)
    opt = opt_cls([w], **kwargs)
    out = []
    for _ in range(steps):
        opt.reset_grad()
        backward_quadratic(w)
        opt.step()
        out.append(w.numpy().copy())
    return out


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_sgd_trajectory_matches_numpy(device, momentum, weight_decay):
    got = run(SGD, device, 5, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    want = sgd_reference(5, 0.1, momentum, weight_decay)
    for step, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15, err_msg=f"step {step + 1}")


def test_sgd_first_momentum_step_is_averaged_not_summed(device):
    """Course rule: u starts at 0, so step 1 moves by lr*(1-momentum)*g (PyTorch: lr*g)."""
    got = run(SGD, device, 1, lr=0.5, momentum=0.75)[0]
    np.testing.assert_allclose(got, THETA0 - 0.5 * 0.25 * quadratic_grad(THETA0), rtol=1e-14)


@pytest.mark.parametrize("kwargs", [
    {}, {"weight_decay": 0.2}, {"beta1": 0.5, "beta2": 0.9, "eps": 1e-3},
])
def test_adam_trajectory_matches_numpy(device, kwargs):
    full = {"lr": 0.05, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, **kwargs}
    got = run(Adam, device, 6, **full)
    want = adam_reference(6, **full)
    for step, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15, err_msg=f"step {step + 1}")


def test_adam_first_step_is_bias_corrected(device):
    """With correction m̂ = g and v̂ = g², so step 1 moves every entry by lr*g/(|g|+eps)."""
    got = run(Adam, device, 1, lr=0.01, eps=1e-8)[0]
    g = quadratic_grad(THETA0)
    np.testing.assert_allclose(got, THETA0 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-14)


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameters_keep_dtype_identity_and_grads(device, opt_cls, dtype):
    w = ndl.Tensor(THETA0, device=device, dtype=dtype)
    kwargs = {"momentum": 0.9} if opt_cls is SGD else {}
    opt = opt_cls([w], lr=0.1, weight_decay=0.01, **kwargs)
    array = None
    for _ in range(3):
        opt.reset_grad()
        backward_quadratic(w)
        grad, grad_before = w.grad, w.grad.numpy().copy()
        opt.step()
        assert w.grad is grad, "step must not replace .grad"
        np.testing.assert_array_equal(w.grad.numpy(), grad_before, err_msg="step changed .grad")
        # The first step packs parameters into one flat buffer; after that, updates are in place.
        array = w._array if array is None else array
        assert w.dtype == np.dtype(dtype) and w._array is array
        assert w.op is None and w.requires_grad
    for entry in opt.state.values():
        assert all(np.dtype(v.dtype) == np.dtype(dtype) for v in entry.values() if hasattr(v, "dtype"))
    assert not np.allclose(w.numpy(), THETA0)


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_thousand_steps_keep_tensor_count_flat(opt_cls):
    """No graph, no tensors: neither step() nor a training loop may leak nodes."""
    w = ndl.Tensor(THETA0)
    b = ndl.Tensor(np.zeros((1, 3)))
    kwargs = {"momentum": 0.9} if opt_cls is SGD else {}
    opt = opt_cls([w, b], lr=0.01, weight_decay=0.01, **kwargs)
    x = ndl.Tensor(np.ones((4, 2)), requires_grad=False)

    def train_step():
        opt.reset_grad()
        ((x @ w + b.broadcast_to((4, 3))) ** 2).sum().backward()
        opt.step()

    for _ in range(10):
        train_step()
    before = needle.autograd.TENSOR_COUNTER
    for _ in range(1000):
        train_step()
    assert needle.autograd.TENSOR_COUNTER == before
    for _ in range(1000):
        opt.step()  # step alone creates no Tensor at all
    assert needle.autograd.TENSOR_COUNTER == before


def test_parameters_without_grad_are_skipped(device):
    w = ndl.Tensor(THETA0, device=device, dtype="float64")
    frozen = ndl.Tensor(THETA0, device=device, dtype="float64")
    for opt in (SGD([w, frozen], lr=0.1, momentum=0.5), Adam([w, frozen], lr=0.1)):
        opt.reset_grad()
        backward_quadratic(w)
        opt.step()
        assert frozen.grad is None and 1 not in opt.state and 0 in opt.state
        np.testing.assert_array_equal(frozen.numpy(), THETA0)


def test_reset_grad_and_zero_grad_clear_gradients():
    w = ndl.Tensor(THETA0)
    opt = SGD([w])
    for clear in (opt.reset_grad, opt.zero_grad):
        backward_quadratic(w)
        assert w.grad is not None
        clear()
        assert w.grad is None


def test_read_only_broadcast_parameter_is_copied_once(device):
    base = np.array([1.0, 2.0, 3.0])
    w = ndl.Tensor(base, device=device, dtype="float64").broadcast_to((2, 3)).detach()
    w.requires_grad = True
    opt = SGD([w], lr=0.5)
    w.grad = ndl.Tensor(np.arange(6.0).reshape(2, 3), device=device, dtype="float64")
    opt.step()
    first = w._array
    opt.step()
    assert w._array is first, "the copy happens once; later steps update it in place"
    np.testing.assert_allclose(w.numpy(), base - 2 * 0.5 * np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(base, [1.0, 2.0, 3.0])


def test_duplicate_parameters_are_updated_once():
    w = ndl.Tensor(THETA0, dtype="float64")
    opt = SGD([w, w], lr=0.1)
    assert len(opt.params) == 1 and opt.params[0] is w
    backward_quadratic(w)
    opt.step()
    np.testing.assert_allclose(w.numpy(), THETA0 - 0.1 * quadratic_grad(THETA0), rtol=1e-14)


def test_grad_of_wrong_shape_is_a_clear_error():
    w = ndl.Tensor(np.zeros((2, 3)))
    w.grad = ndl.Tensor(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"parameter 0 has shape \(2, 3\) but its grad has shape"):
        SGD([w]).step()


@pytest.mark.parametrize("make, name, value", [
    (lambda p: SGD(p, lr=-0.1), "lr", -0.1),
    (lambda p: SGD(p, lr=math.nan), "lr", math.nan),
    (lambda p: SGD(p, lr="0.1"), "lr", "0.1"),
    (lambda p: SGD(p, lr=True), "lr", True),
    (lambda p: SGD(p, momentum=1.0), "momentum", 1.0),
    (lambda p: SGD(p, momentum=-0.5), "momentum", -0.5),
    (lambda p: SGD(p, weight_decay=-1e-4), "weight_decay", -1e-4),
    (lambda p: Adam(p, lr=math.inf), "lr", math.inf),
    (lambda p: Adam(p, beta1=1.0), "beta1", 1.0),
    (lambda p: Adam(p, beta2=-0.1), "beta2", -0.1),
    (lambda p: Adam(p, eps=-1e-8), "eps", -1e-8),
    (lambda p: Adam(p, weight_decay=-2), "weight_decay", -2),
])
def test_bad_hyperparameters_raise_valueerror_naming_them(make, name, value):
    with pytest.raises(ValueError) as info:
        make([ndl.Tensor([1.0])])
    assert f"invalid {name}: {value!r}" in str(info.value)


def test_bad_parameter_lists():
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(TypeError, match=r"params\[1\] is a ndarray"):
        SGD([ndl.Tensor([1.0]), np.zeros(2)])


@pytest.mark.parametrize("opt_cls, kwargs", [
    (SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    (Adam, {"lr": 0.05, "weight_decay": 0.01}),
])
def test_state_dict_round_trip_through_a_checkpoint_continues_identically(device, tmp_path,
                                                                           opt_cls, kwargs):
    ws = [ndl.Tensor(THETA0, device=device, dtype="float64"),
          ndl.Tensor(THETA0[:1], device=device, dtype="float32"),
          ndl.Tensor(THETA0[1], device=device, dtype="float64")]  # never gets a grad
    opt = opt_cls(ws, **kwargs)

    def train(opt, ws, steps):
        for _ in range(steps):
            opt.reset_grad()
            backward_quadratic(ws[0])
            (ws[1] * ws[1]).sum().backward()
            opt.step()

    train(opt, ws, 3)
    snapshot = opt.state_dict()
    ndl.save({"optimizer": snapshot, "params": [w.detach() for w in ws]}, tmp_path / "o.npz")
    before = {k: v.numpy().copy() for k, v in snapshot["state"][0].items() if k != "step"}
    train(opt, ws, 1)
    for k, v in before.items():  # a snapshot: later steps do not change it
        np.testing.assert_array_equal(snapshot["state"][0][k].numpy(), v)

    ckpt = ndl.load(tmp_path / "o.npz", device=device)
    resumed_ws = [ndl.Tensor(p, device=device) for p in ckpt["params"]]
    resumed = opt_cls(resumed_ws, lr=123.0)  # hyper-parameters come from the state dict
    resumed.load_state_dict(ckpt["optimizer"])
    assert resumed.lr == kwargs["lr"]
    train(resumed, resumed_ws, 1)
    for a, b in zip(ws, resumed_ws):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    train(opt, ws, 3)
    train(resumed, resumed_ws, 3)
    for a, b in zip(ws, resumed_ws):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    w = ndl.Tensor(THETA0)
    opt = Adam([w], lr=0.1)
    backward_quadratic(w)
    opt.step()
    good = opt.state_dict()
    state_before = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in opt.state[0].items()}
    bad_shape = {**good, "state": {0: {**good["state"][0], "m": np.zeros((3, 2))}}}
    bad_lr = {**good, "hyper": {**good["hyper"], "lr": -1.0}}
    cases = [
        (SGD([w]).state_dict(), "not a Adam state dict"),
        ({**good, "num_params": 2}, "for 2 parameters, this optimizer has 1"),
        (bad_shape, "state 'm' of parameter 0 has shape (3, 2), the parameter has (2, 3)"),
        (bad_lr, "invalid lr: -1.0"),
        ({**good, "state": {5: good["state"][0]}}, "bad state for parameter 5"),
        ({**good, "state": {0: {"m": good["state"][0]["m"]}}}, "bad state for parameter 0"),
    ]
    for state, message in cases:
        with pytest.raises(ValueError) as info:
            opt.load_state_dict(state)
        assert message in str(info.value)
    assert opt.lr == 0.1 and opt.state[0]["step"] == 1
    for k, v in state_before.items():
        np.testing.assert_array_equal(opt.state[0][k], v)
