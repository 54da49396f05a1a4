"""ModuleList and ModuleDict: discovery, state_dict keys, to, train/eval, list/dict behaviour."""

from __future__ import annotations

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest


class Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.Dropout(0.5)])
        self.heads = nn.ModuleDict({"cls": nn.Linear(3, 2), "norm": nn.BatchNorm1d(3)})

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.heads["cls"](self.heads["norm"](x))


def test_state_dict_keys_are_pytorchs():
    model = Tower()
    assert list(model.state_dict()) == [
        "blocks.0.weight", "blocks.0.bias", "heads.cls.weight", "heads.cls.bias",
        "heads.norm.weight", "heads.norm.bias", "heads.norm.running_mean", "heads.norm.running_var"]
    assert len(model.parameters()) == 6
    assert [n for n, _ in model.named_modules()] == [
        "", "blocks", "blocks.0", "blocks.1", "heads", "heads.cls", "heads.norm"]


def test_round_trip_and_training_mode():
    a, b = Tower(), Tower()
    b.load_state_dict(a.state_dict())
    x = ndl.Tensor(np.random.default_rng(0).standard_normal((4, 3)))
    a.eval()
    b.eval()
    assert not b.blocks[1].training and not b.heads["norm"].training
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy())
    b.train()
    assert b.blocks[1].training and b.heads["norm"].training


def test_to_moves_entries_in_place():
    model = Tower()
    w = model.heads["cls"].weight
    model.to(ndl.cpu())
    assert model.heads["cls"].weight is w and w.device == ndl.cpu()


def test_module_list_behaves_like_a_list():
    layers = nn.ModuleList()
    assert len(layers) == 0 and list(layers.state_dict()) == []
    first, second, third = nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)
    assert layers.append(first) is layers
    layers.extend([third])
    layers.insert(1, second)
    assert list(layers) == [first, second, third] and layers[-1] is third
    assert isinstance(layers[1:], nn.ModuleList) and list(layers[1:]) == [second, third]
    assert list(layers.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    layers[0] = nn.Linear(2, 2, bias=False)
    del layers[1]
    assert list(layers.state_dict()) == ["0.weight", "1.weight", "1.bias"]
    assert "(1): Linear(in_features=2" in repr(layers)
    with pytest.raises(TypeError, match=r"ModuleList: entry 1 must be a Module, got int"):
        nn.ModuleList([nn.ReLU(), 3])
    with pytest.raises(TypeError, match="use append"):
        layers.extend(nn.ReLU())
    with pytest.raises(NotImplementedError):
        layers(ndl.Tensor([1.0]))


def test_module_dict_behaves_like_a_dict():
    heads = nn.ModuleDict([("b", nn.Linear(2, 2)), ("a", nn.Linear(2, 3))])
    assert list(heads) == ["b", "a"] and "a" in heads and len(heads) == 2
    assert list(heads.state_dict()) == ["b.weight", "b.bias", "a.weight", "a.bias"]
    heads.update({"c": nn.ReLU()})
    assert list(heads.keys()) == ["b", "a", "c"]
    assert heads.pop("b").out_features == 2 and list(heads) == ["a", "c"]
    assert [k for k, _ in heads.items()] == ["a", "c"] and len(list(heads.values())) == 2
    for bad in ("x.y", "", 3):
        with pytest.raises(KeyError, match="non-empty strings without"):
            heads[bad] = nn.ReLU()
    with pytest.raises(KeyError, match=r"no entry 'zz' \(keys: \['a', 'c'\]\)"):
        heads["zz"]
    with pytest.raises(TypeError, match=r"entry 'q' must be a Module, got str"):
        heads["q"] = "relu"
    with pytest.raises(TypeError, match="mapping or \\(key, Module\\) pairs"):
        nn.ModuleDict(["ab"])


def test_optimizer_sees_container_parameters():
    model = Tower()
    opt = ndl.optim.SGD(model.parameters(), lr=0.1)
    x = ndl.Tensor(np.ones((4, 3)))
    assert {id(p) for p in opt.params} == {id(p) for p in model.parameters()}
    before = model.heads["cls"].bias.numpy().copy()
    model(x).sum().backward()
    opt.step()
    np.testing.assert_allclose(model.heads["cls"].bias.numpy(), before - 0.1 * 4, rtol=1e-6)
