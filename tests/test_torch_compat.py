"""needle against PyTorch, where torch is installed (the ``bench`` environment):
``hatch -e bench run python -m pytest tests/test_torch_compat.py``.

Recurrent layers (outputs and every gradient, float64), Adam/AdamW with betas and
parameter groups, loading a PyTorch ``state_dict``, DLPack both ways and
safetensors files written by one and read by the other.
"""

from __future__ import annotations

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest
from needle import optim

torch = pytest.importorskip("torch", reason="torch is not installed (use the bench env)")

F64 = "float64"


def _pair(kind, batch_first, num_layers=2, bias=True):
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(3, 4, num_layers=num_layers, bias=bias,
                                  batch_first=batch_first).double()
    mine = getattr(nn, kind)(3, 4, num_layers=num_layers, bias=bias, dtype=F64,
                             batch_first=batch_first)
    nn.load_torch_state_dict(mine, ref.state_dict())
    return ref, mine


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_recurrent_layers_match_torch_with_gradients(kind, batch_first, bias):
    ref, mine = _pair(kind, batch_first, bias=bias)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3) if batch_first else (5, 2, 3))
    h0 = rng.standard_normal((2, 2, 4))
    c0 = rng.standard_normal((2, 2, 4))
    tx, th, tc = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    nx, nh, nc = (ndl.Tensor(a, dtype=F64) for a in (x, h0, c0))
    t_out, t_state = ref(tx, (th, tc) if kind == "LSTM" else th)
    n_out, n_state = mine(nx, (nh, nc) if kind == "LSTM" else nh)
    np.testing.assert_allclose(n_out.numpy(), t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    t_states = t_state if kind == "LSTM" else (t_state,)
    n_states = n_state if kind == "LSTM" else (n_state,)
    for a, b in zip(n_states, t_states):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    # One scalar loss over every output, random weights so no gradient is trivially equal.
    w_out = rng.standard_normal(t_out.shape)
    w_h = rng.standard_normal(t_states[-1].shape)
    (t_out * torch.tensor(w_out)).sum().add((t_states[-1] * torch.tensor(w_h)).sum()).backward()
    ((n_out * ndl.Tensor(w_out, dtype=F64)).sum()
     + (n_states[-1] * ndl.Tensor(w_h, dtype=F64)).sum()).backward()
    np.testing.assert_allclose(nx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(nh.grad.numpy(), th.grad.numpy(), rtol=1e-9, atol=1e-12)
    cells = getattr(mine, mine.cells_name)
    for k, cell in enumerate(cells):
        torch_grad = dict(ref.named_parameters())
        np.testing.assert_allclose(cell.W_ih.grad.numpy(), torch_grad[f"weight_ih_l{k}"].grad.T,
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(cell.W_hh.grad.numpy(), torch_grad[f"weight_hh_l{k}"].grad.T,
                                   rtol=1e-9, atol=1e-12)
        if bias:
            np.testing.assert_allclose(cell.bias_hh.grad.numpy(),
                                       torch_grad[f"bias_hh_l{k}"].grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(kind):
    torch.manual_seed(1)
    ref = getattr(torch.nn, kind)(3, 4).double()
    mine = getattr(nn, kind)(3, 4, dtype=F64)
    nn.load_torch_state_dict(mine, ref.state_dict())
    x = np.random.default_rng(1).standard_normal((2, 3))
    t, n = ref(torch.tensor(x)), mine(ndl.Tensor(x, dtype=F64))
    t, n = (t, n) if kind != "LSTMCell" else (t[1], n[1])
    np.testing.assert_allclose(n.numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)


def _torch_groups(params, groups):
    return [{**g, "params": [params[i] for i in idx]} for idx, g in groups]


def _needle_groups(params, groups):
    return [{**g, "params": [params[i] for i in idx]} for idx, g in groups]


@pytest.mark.parametrize("name, kwargs", [
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6}),
    ("Adam", {"lr": 0.02, "weight_decay": 0.1}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.05, "betas": (0.7, 0.9), "weight_decay": 0.3}),
])
@pytest.mark.parametrize("grouped", [False, True])
def test_adam_and_adamw_match_torch(name, kwargs, grouped):
    rng = np.random.default_rng(2)
    starts = [rng.standard_normal(s) for s in ((3, 4), (4,), (2, 2))]
    t_params = [torch.tensor(a, requires_grad=True) for a in starts]
    n_params = [ndl.Tensor(a, dtype=F64) for a in starts]
    if grouped:  # PyTorch's usual split: decay on matrices, none on the vector
        spec = [([0, 2], {"lr": 0.03}), ([1], {"weight_decay": 0.0, "betas": (0.5, 0.6)})]
        t_opt = getattr(torch.optim, name)(_torch_groups(t_params, spec), **kwargs)
        n_opt = getattr(optim, name)(_needle_groups(n_params, spec), **kwargs)
    else:
        t_opt = getattr(torch.optim, name)(t_params, **kwargs)
        n_opt = getattr(optim, name)(n_params, **kwargs)
    for _ in range(5):
        grads = [rng.standard_normal(a.shape) for a in starts]
        for t, n, g in zip(t_params, n_params, grads):
            t.grad = torch.tensor(g)
            n.grad = ndl.Tensor(g, dtype=F64)
        t_opt.step()
        n_opt.step()
    for t, n in zip(t_params, n_params):
        np.testing.assert_allclose(n.numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_sgd_without_momentum_matches_torch_per_group():
    """(With momentum the course's average differs from PyTorch's sum by design.)"""
    rng = np.random.default_rng(3)
    starts = [rng.standard_normal(3), rng.standard_normal(2)]
    t_params = [torch.tensor(a, requires_grad=True) for a in starts]
    n_params = [ndl.Tensor(a, dtype=F64) for a in starts]
    spec = [([0], {"lr": 0.5, "weight_decay": 0.1}), ([1], {})]
    t_opt = torch.optim.SGD(_torch_groups(t_params, spec), lr=0.1)
    n_opt = optim.SGD(_needle_groups(n_params, spec), lr=0.1)
    for _ in range(3):
        for t, n in zip(t_params, n_params):
            g = rng.standard_normal(t.shape)
            t.grad, n.grad = torch.tensor(g), ndl.Tensor(g, dtype=F64)
        t_opt.step()
        n_opt.step()
    for t, n in zip(t_params, n_params):
        np.testing.assert_allclose(n.numpy(), t.detach().numpy(), rtol=1e-12)


class _TorchNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1),
                                            torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                                            torch.nn.Conv2d(3, 4, 3, stride=2, padding=1,
                                                            bias=False))
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5),
                                        torch.nn.LayerNorm(5), torch.nn.Linear(5, 2))

    def forward(self, x):
        return self.head(self.features(x))


class _NeedleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv(2, 3, 3, dtype=F64), nn.BatchNorm2d(3, dtype=F64),
                                      nn.ReLU(), nn.Conv(3, 4, 3, stride=2, bias=False,
                                                         dtype=F64))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 5, dtype=F64),
                                  nn.LayerNorm1d(5, dtype=F64), nn.Linear(5, 2, dtype=F64))

    def forward(self, x):
        return self.head(self.features(x))


def test_state_dict_of_a_cnn_loads_transposed():
    torch.manual_seed(4)
    ref = _TorchNet().double()
    with torch.no_grad():  # non-trivial statistics and affine parameters
        bn = ref.features[1]
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0, 2)
    ref.eval()
    mine = _NeedleNet()
    assert nn.load_torch_state_dict(mine, ref.state_dict()) == ([], [])
    mine.eval()
    x = np.random.default_rng(4).standard_normal((2, 2, 4, 4))
    np.testing.assert_allclose(mine(ndl.Tensor(x, dtype=F64)).numpy(),
                               ref(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    assert mine.features.modules[0].weight.shape == (3, 3, 2, 3)


def test_embedding_and_lstm_language_model():
    torch.manual_seed(5)
    t_emb, t_lstm, t_out = torch.nn.Embedding(7, 3), torch.nn.LSTM(3, 4), torch.nn.Linear(4, 7)
    ref = torch.nn.ModuleList([t_emb, t_lstm, t_out])
    mine = nn.ModuleList([nn.Embedding(7, 3), nn.LSTM(3, 4), nn.Linear(4, 7)])
    nn.load_torch_state_dict(mine, ref.state_dict())
    ids = np.random.default_rng(5).integers(0, 7, (6, 2))
    t_y = t_out(t_lstm(t_emb(torch.tensor(ids)))[0])
    n_y = mine[2](mine[1](mine[0](ndl.Tensor(ids, dtype="int64", requires_grad=False)))[0])
    np.testing.assert_allclose(n_y.numpy(), t_y.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_load_errors_name_both_sides():
    with pytest.raises(ndl.NeedleError, match=r"2 modules with weights \['0', '1'\], the needle "
                                              r"model 1 .*not the same architecture"):
        nn.load_torch_state_dict(nn.Sequential(nn.Linear(3, 4)),
                                 torch.nn.Sequential(torch.nn.Linear(3, 4),
                                                     torch.nn.Linear(4, 4)).state_dict())
    with pytest.raises(ndl.NeedleError, match=r"'0' -> needle 'modules.0' \(Linear\): 'weight' "
                                              r"converts to shape \(3, 5\), the model has \(3, 4\)"):
        nn.load_torch_state_dict(nn.Sequential(nn.Linear(3, 4)),
                                 torch.nn.Sequential(torch.nn.Linear(3, 5)).state_dict())
    with pytest.raises(ndl.NeedleError, match="bidirectional"):
        nn.load_torch_state_dict(nn.GRU(3, 4), torch.nn.GRU(3, 4, bidirectional=True).state_dict())
    with pytest.raises(ndl.NeedleError, match=r"has tensors \['running_mean', 'running_var'\] "
                                              r"that this needle layer has no place for"):
        nn.load_torch_state_dict(nn.LayerNorm1d(4), torch.nn.BatchNorm1d(4).state_dict())
    with pytest.raises(ndl.NeedleError, match="bfloat16"):
        nn.load_torch_state_dict(nn.Linear(2, 2), torch.nn.Linear(2, 2).bfloat16().state_dict())
    with pytest.raises(ndl.NeedleError, match=r"dtype float64 in the state dict, float32"):
        nn.load_torch_state_dict(nn.Linear(2, 2), torch.nn.Linear(2, 2).double().state_dict())


def test_dlpack_both_ways_without_copies():
    t = torch.arange(6.0).reshape(2, 3)
    n = ndl.from_dlpack(t)
    t[0, 0] = 100.0
    assert n.numpy()[0, 0] == 100.0 and n.dtype == np.float32
    back = torch.from_dlpack(n)
    n.numpy()[1, 2] = -5.0
    assert back[1, 2].item() == -5.0
    wide = ndl.Tensor(np.arange(3.0)).broadcast_to((2, 3))
    np.testing.assert_array_equal(torch.from_dlpack(wide).numpy(), [[0, 1, 2], [0, 1, 2]])
    np.testing.assert_array_equal(ndl.from_dlpack(t.T).numpy(), t.T.numpy())
    with pytest.raises(ndl.NeedleError, match="bfloat16"):
        ndl.from_dlpack(torch.ones(2, dtype=torch.bfloat16))


def test_safetensors_between_torch_and_needle(tmp_path):
    st = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")
    torch.manual_seed(6)
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    path = tmp_path / "ref.safetensors"
    st.save_file(ref.state_dict(), str(path))
    mine = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    nn.load_torch_state_dict(mine, ndl.load(path))
    x = np.random.default_rng(6).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(mine(ndl.Tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    ndl.save(mine.state_dict(), tmp_path / "mine.safetensors")
    back = st.load_file(str(tmp_path / "mine.safetensors"))
    np.testing.assert_array_equal(back["modules.0.weight"].numpy(), ref[0].weight.detach().numpy().T)


def test_containers_have_torchs_state_dict_keys():
    """Same nesting, same names: a ModuleList/ModuleDict model's keys are PyTorch's."""
    ref = torch.nn.ModuleDict({"enc": torch.nn.ModuleList([torch.nn.Linear(3, 3),
                                                           torch.nn.Linear(3, 2)]),
                               "norm": torch.nn.LayerNorm(2)})
    mine = nn.ModuleDict({"enc": nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 2)]),
                          "norm": nn.LayerNorm1d(2)})
    assert list(mine.state_dict()) == list(ref.state_dict())
    nn.load_torch_state_dict(mine, ref.state_dict())
    np.testing.assert_array_equal(mine["enc"][1].weight.numpy(),
                                  ref["enc"][1].weight.detach().numpy().T)
