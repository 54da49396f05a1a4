"""Checkpoints of real models: save, load into a fresh model, resume training exactly."""

from __future__ import annotations

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest
from needle.optim import SGD, Adam


def make_model(device, hidden=16):
    return nn.Sequential(nn.Linear(8, hidden, device=device), nn.BatchNorm1d(hidden, device=device),
                         nn.ReLU(), nn.Linear(hidden, 4, device=device))


def batch(device, seed):
    rng = np.random.default_rng(seed)
    x = ndl.Tensor(rng.standard_normal((32, 8)), device=device, requires_grad=False)
    y = ndl.Tensor(rng.integers(0, 4, 32), device=device, requires_grad=False)
    return x, y


def train(model, opt, device, seeds):
    model.train()
    loss_fn = nn.SoftmaxLoss()
    for seed in seeds:
        x, y = batch(device, seed)
        opt.reset_grad()
        loss_fn(model(x), y).backward()
        opt.step()


def outputs(model, device):
    model.eval()
    return model(batch(device, 99)[0]).numpy()


@pytest.mark.parametrize("opt_cls, kwargs", [
    (SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}), (Adam, {"lr": 0.01})])
def test_resume_from_checkpoint_reproduces_outputs_and_training(device, tmp_path, opt_cls, kwargs):
    np.random.seed(0)
    model = make_model(device)
    opt = opt_cls(model.parameters(), **kwargs)
    train(model, opt, device, range(3))
    ndl.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3},
             tmp_path / "ckpt.npz")
    reference = outputs(model, device)
    train(model, opt, device, range(3, 6))
    continued = outputs(model, device)

    np.random.seed(1)  # a different initialisation, overwritten by the checkpoint
    fresh = make_model(device)
    fresh_opt = opt_cls(fresh.parameters(), lr=0.5)
    ckpt = ndl.load(tmp_path / "ckpt.npz", device=device)
    fresh.load_state_dict(ckpt["model"])
    fresh_opt.load_state_dict(ckpt["optimizer"])
    assert ckpt["epoch"] == 3
    np.testing.assert_array_equal(outputs(fresh, device), reference)  # BatchNorm buffers included
    train(fresh, fresh_opt, device, range(ckpt["epoch"], 6))
    np.testing.assert_array_equal(outputs(fresh, device), continued)
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpoint_moves_models_across_devices(device, tmp_path):
    np.random.seed(0)
    model = make_model(ndl.cpu())
    ndl.save(model.state_dict(), tmp_path / "m.npz")
    moved = make_model(device)
    moved.load_state_dict(ndl.load(tmp_path / "m.npz", device=device))
    assert all(p.device == device for p in moved.parameters())
    np.testing.assert_allclose(outputs(moved, device), outputs(model, ndl.cpu()), rtol=1e-5, atol=1e-6)


def test_loading_into_a_different_architecture_names_the_differences(tmp_path):
    np.random.seed(0)
    ndl.save(make_model(ndl.cpu()).state_dict(), tmp_path / "m.npz")
    state = ndl.load(tmp_path / "m.npz")
    wider = make_model(ndl.cpu(), hidden=32)
    before = [p.numpy().copy() for p in wider.parameters()]
    with pytest.raises(ValueError) as info:
        wider.load_state_dict(state)
    message = str(info.value)
    assert "'modules.0.weight': shape (8, 16) in the state dict, (8, 32) in the model" in message
    assert all(np.array_equal(p.numpy(), b) for p, b in zip(wider.parameters(), before))

    deeper = nn.Sequential(make_model(ndl.cpu()), nn.Linear(4, 2))
    with pytest.raises(ValueError) as info:
        deeper.load_state_dict(state)
    assert "missing keys" in str(info.value) and "unexpected keys" in str(info.value)
    assert "'modules.0.weight'" in str(info.value)  # unexpected: saved from the smaller model
    assert "'modules.0.modules.0.weight'" in str(info.value)  # missing: the deeper model's name
