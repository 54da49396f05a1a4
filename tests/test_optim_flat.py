"""The optimizers' fused path packs every parameter into one buffer; it must give the
same numbers as the per-parameter path and notice when a parameter is replaced; and
``fused=True``/``False`` really choose the path."""

import needle as ndl
import numpy as np
import pytest
from needle.optim import SGD, Adam, AdamW


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


@pytest.mark.parametrize("fused", [None, True, False])
def test_replacing_a_parameter_array_is_noticed_and_keeps_the_path(device, monkeypatch, fused):
    params = make_params(device)
    opt = SGD(params, lr=0.5, fused=fused)
    calls = count_updates(monkeypatch, device.backend, "sgd_update")
    set_grads(params, 0)
    opt.step()
    params[1].data = ndl.Tensor(np.full((1, 4), 7.0), device=device, dtype="float64")
    set_grads(params, 1)
    grad = params[1].grad.numpy().copy()
    opt.step()
    # one flat call a step (packed again around the new array), or one per parameter
    assert len(calls) == (2 * len(params) if fused is False else 2)
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


# -- the explicit switch: fused=True / False / None ----------------------------------
def count_updates(monkeypatch, backend, name):
    """Wrap ``backend.<name>`` (the update kernel) to count its calls."""
    calls = []
    kernel = getattr(backend, name)

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(backend, name, counted)
    return calls


OPTIMIZERS = {
    "sgd": (lambda ps, **kw: SGD(ps, lr=0.1, weight_decay=0.01, **kw), "sgd_update"),
    "sgd-momentum": (lambda ps, **kw: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, **kw),
                     "sgd_update"),
    "adam": (lambda ps, **kw: Adam(ps, lr=0.05, weight_decay=0.01, **kw), "adam_update"),
    "adamw": (lambda ps, **kw: AdamW(ps, lr=0.05, weight_decay=0.1, **kw), "adam_update"),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fused_and_per_parameter_paths_each_run_when_chosen_and_agree(device, monkeypatch, name):
    make, kernel = OPTIMIZERS[name]
    fused_params, single_params = make_params(device), make_params(device)
    fused, single = make(fused_params, fused=True), make(single_params, fused=False)
    calls = count_updates(monkeypatch, device.backend, kernel)
    for t in range(4):
        set_grads(fused_params, t)
        set_grads(single_params, t)
        del calls[:]
        fused.step()
        assert calls == [(sum(int(np.prod(p.shape)) for p in fused_params),)]  # one flat call
        del calls[:]
        single.step()
        assert calls == [p.shape for p in single_params]  # one call per parameter
    assert single._flat is None and fused._flat is not None
    if isinstance(single_params[0]._array, np.ndarray):
        # per parameter, each owns its storage; fused, all are views of the one buffer
        assert all(p._array.base is None for p in single_params)
        assert all(p._array.base is fused._flat.params for p in fused_params)
    for a, b in zip(fused_params, single_params):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-15)
    for i, entry in single.state.items():
        for key in single.state_arrays:
            np.testing.assert_allclose(device.backend.to_numpy(fused.state[i][key]),
                                       device.backend.to_numpy(entry[key]), rtol=1e-12)


def test_fused_true_refuses_mixed_dtypes_naming_the_parameter(device):
    params = make_params(device)
    params.append(ndl.Tensor(np.ones(3), device=device, dtype="float32"))
    with pytest.raises(ValueError, match=r"fused=True\): parameter 4 is float32 .* parameter 0 "
                                         r"is float64"):
        Adam(params, fused=True)
    Adam(params)  # fused=None: mixed dtypes are updated one by one
    opt = SGD(params[:4], fused=True)
    with pytest.raises(ValueError, match="parameter 4 is float32"):
        opt.add_param_group({"params": params[4:]})
    assert len(opt.params) == 4 and len(opt.param_groups) == 1  # nothing half-added


def test_fused_true_with_a_missing_grad_is_an_error_that_changes_nothing(device):
    params = make_params(device)
    opt = Adam(params, lr=0.1, fused=True)
    set_grads(params, 0)
    params[2].grad = None
    before = [p.numpy().copy() for p in params]
    with pytest.raises(ValueError, match=r"Adam\(fused=True\)\.step: parameter 2 has no gradient"):
        opt.step()
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)
    assert opt.state == {}


def test_fused_must_be_a_bool_or_none(device):
    with pytest.raises(TypeError, match="fused must be True, False or None, got 'yes'"):
        SGD(make_params(device), fused="yes")


def test_sgd_packs_again_after_a_step_that_skipped_a_parameter(device, monkeypatch):
    params = make_params(device)
    opt = SGD(params, lr=0.1, momentum=0.9)
    set_grads(params, 0)
    params[2].grad = None
    opt.step()  # per parameter: parameter 2 gets no velocity yet
    calls = count_updates(monkeypatch, device.backend, "sgd_update")
    set_grads(params, 1)
    opt.step()
    assert len(calls) == 1 and opt._flat is not None  # its velocity starts at zero in the buffer
