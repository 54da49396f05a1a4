"""Module mechanics: discovery, names, modes, buffers, state dicts, devices and repr."""

from __future__ import annotations

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest


class Bag(nn.Module):
    """Parameters and modules hidden in dicts, lists and tuples (the course's rule)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(ndl.init.ones(2))
        self.stuff = {"a": nn.Linear(2, 3), "b": [nn.Dropout(0.1), nn.Sequential(nn.Linear(3, 1))]}
        self.pair = (nn.Parameter(ndl.init.zeros(1)), nn.BatchNorm1d(3))
        self.note = "not a parameter"
        self.plain = ndl.Tensor([1.0])  # a plain Tensor is neither parameter nor buffer


def test_parameters_found_through_containers_in_course_order():
    bag = Bag()
    names = [name for name, _ in bag.named_parameters()]
    assert names == ["scale", "stuff.a.weight", "stuff.a.bias", "stuff.b.1.modules.0.weight",
                     "stuff.b.1.modules.0.bias", "pair.0", "pair.1.weight", "pair.1.bias"]
    shapes = [p.shape for p in bag.parameters()]
    assert shapes == [(2,), (2, 3), (1, 3), (3, 1), (1, 1), (1,), (3,), (3,)]
    assert sum(int(np.prod(s)) for s in shapes) == 2 + 6 + 3 + 3 + 1 + 1 + 3 + 3
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in bag.parameters())


def test_children_modules_and_course_children():
    bag = Bag()
    assert [n for n, _ in bag.named_children()] == ["stuff.a", "stuff.b.0", "stuff.b.1", "pair.1"]
    names = [n for n, _ in bag.named_modules()]
    assert names == ["", "stuff.a", "stuff.b.0", "stuff.b.1", "stuff.b.1.modules.0", "pair.1"]
    assert list(bag.modules())[0] is bag and len(list(bag.modules())) == 6
    assert len(bag._children()) == 5 and bag not in bag._children()
    assert [type(c).__name__ for c in bag.children()] == ["Linear", "Dropout", "Sequential",
                                                          "BatchNorm1d"]


def test_train_eval_reaches_every_nested_module():
    model = nn.Sequential(nn.BatchNorm1d(4), nn.Sequential(nn.LayerNorm1d(4), nn.Dropout(0.1)),
                          Bag())
    everything = [m for _, m in model.named_modules()]
    assert len(everything) == 11 and all(m.training for m in everything)
    assert model.eval() is model
    assert not any(m.training for m in everything)
    model.train()
    assert all(m.training for m in everything)


def test_shared_weights_yielded_once_but_saved_under_every_name():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in model.named_parameters()] == ["modules.0.weight", "modules.0.bias"]
    assert len(model.parameters()) == 2
    assert [n for n, _ in model.named_modules()] == ["", "modules.0", "modules.1"]
    assert list(model.state_dict()) == ["modules.0.weight", "modules.0.bias",
                                        "modules.2.weight", "modules.2.bias"]
    tied = nn.Module()
    tied.w = nn.Parameter(ndl.init.ones(2))
    tied.again = [tied.w]
    assert [n for n, _ in tied.named_parameters()] == ["w"]


def test_module_holding_its_ancestor_does_not_loop():
    outer = nn.Sequential(nn.Linear(2, 2))
    outer.modules[0].parent = outer
    assert len(outer.parameters()) == 2
    assert len(outer.state_dict()) == 2
    assert len(list(outer.named_modules())) == 2


def test_state_dict_has_buffers_and_round_trips_into_a_fresh_model():
    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))

    np.random.seed(0)
    model = make()
    x = ndl.Tensor(np.random.randn(8, 4))
    for _ in range(3):
        model(x)  # moves BatchNorm's running statistics away from 0/1
    state = model.state_dict()
    assert list(state) == ["modules.0.weight", "modules.0.bias", "modules.1.weight",
                           "modules.1.bias", "modules.1.running_mean", "modules.1.running_var",
                           "modules.3.weight", "modules.3.bias"]
    assert [n for n, _ in model.named_buffers()] == ["modules.1.running_mean",
                                                     "modules.1.running_var"]
    assert all(not t.requires_grad for t in state.values())
    fresh = make()
    result = fresh.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key].numpy())
    model.eval()
    fresh.eval()
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())
    # The load copies: training one model does not move the other.
    fresh.parameters()[0].data = fresh.parameters()[0].data * 0.0
    assert np.abs(model.parameters()[0].numpy()).sum() > 0
    assert isinstance(fresh.parameters()[0], nn.Parameter)


def test_load_accepts_numpy_arrays():
    model = nn.Linear(2, 2)
    weight = np.arange(4, dtype=np.float32).reshape(2, 2)
    model.load_state_dict({"weight": weight, "bias": np.zeros((1, 2), np.float32)})
    np.testing.assert_array_equal(model.weight.numpy(), weight)
    weight[0, 0] = 99.0
    assert model.weight.numpy()[0, 0] == 0.0


def test_strict_load_names_every_problem_and_changes_nothing():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    state = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).state_dict()
    del state["modules.1.running_var"]
    state["modules.0.weight"] = ndl.init.ones(3, 2)
    state["modules.0.bias"] = state["modules.0.bias"].astype("float64")
    state["extra.weight"] = ndl.init.ones(1)
    with pytest.raises(ndl.NeedleError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "nothing was loaded" in message
    assert "'modules.0.weight': shape (3, 2) in the state dict, (2, 3) in the model" in message
    assert "'modules.0.bias': dtype float64 in the state dict, float32 in the model" in message
    assert "missing keys: ['modules.1.running_var']" in message
    assert "unexpected keys: ['extra.weight']" in message
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_non_strict_load_reports_skipped_keys_but_still_checks_shapes():
    model = nn.Linear(2, 3)
    result = model.load_state_dict({"weight": ndl.init.ones(2, 3), "other": ndl.init.ones(1)},
                                   strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(model.weight.numpy(), np.ones((2, 3)))
    with pytest.raises(ndl.NeedleError, match="'weight': shape"):
        model.load_state_dict({"weight": ndl.init.ones(3, 3)}, strict=False)


def test_register_buffer_rules():
    m = nn.Module()
    m.register_buffer("count", ndl.init.zeros(1))
    m.register_buffer("maybe", None)
    m.count = m.count + 1  # reassigning keeps it a buffer
    assert [n for n, _ in m.named_buffers()] == ["count"]
    assert list(m.state_dict()) == ["count"] and m.parameters() == []
    with pytest.raises(TypeError, match="a Parameter is trained"):
        m.register_buffer("w", nn.Parameter(ndl.init.ones(1)))
    with pytest.raises(TypeError, match="expected a Tensor"):
        m.register_buffer("w", np.ones(1))


def test_zero_grad_and_gradient_accumulation():
    model = nn.Linear(3, 2)
    x = ndl.Tensor(np.ones((4, 3)))
    model(x).sum().backward()
    first = model.weight.grad.numpy().copy()
    model(x).sum().backward()
    np.testing.assert_allclose(model.weight.grad.numpy(), 2 * first)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_moves_in_place_and_keeps_parameter_identity(device):
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    params = model.parameters()
    model(ndl.Tensor(np.ones((2, 3)))).sum().backward()
    assert model.to(device) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.device == device and p.grad.device == device for p in params)
    assert all(b.device == device for b in model.buffers())
    out = model(ndl.Tensor(np.ones((2, 3)), device=device))
    assert out.device == device and out.shape == (2, 2)


def test_repr_is_nested_like_pytorch():
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Residual(nn.Sequential(nn.ReLU())))
    assert repr(model) == (
        "Sequential(\n"
        "  (modules.0): Linear(in_features=4, out_features=3, bias=False)\n"
        "  (modules.1): Residual(\n"
        "    (fn): Sequential(\n"
        "      (modules.0): ReLU()\n"
        "    )\n"
        "  )\n"
        ")")
    assert repr(nn.BatchNorm1d(5)) == "BatchNorm1d(5, eps=1e-05, momentum=0.1)"
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25)"
    assert repr(nn.Conv(2, 4, 3, stride=2)) == "Conv(2, 4, kernel_size=3, stride=2, bias=True)"


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        nn.Module()(1)


def test_course_access_paths():
    from needle import nn as course_nn
    from needle.nn import nn_basic, nn_conv, nn_sequence

    assert ndl.nn is course_nn is nn
    assert ndl.nn.Linear is nn_basic.Linear and ndl.init.kaiming_uniform is not None
    assert nn_conv.Conv is nn.Conv and nn_sequence.LSTM is nn.LSTM
    assert nn_sequence.Embedding is nn.Embedding and nn_basic.BatchNorm2d is nn.BatchNorm2d
