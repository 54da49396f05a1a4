"""GRUCell/GRU against a NumPy reference and gradcheck, ``batch_first`` for RNN, LSTM and
GRU, the stacked layers' shared checks, and the docstring examples of the files involved."""

from __future__ import annotations

import doctest
import importlib
import math

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest
from conftest import check_module, seeds, small, x64
from hypothesis import given
from hypothesis import strategies as st

F64 = "float64"


def tensor(a, device):
    return ndl.Tensor(a, device=device, dtype=a.dtype)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def gru_ref(x, h0, weights):
    """Multi-layer GRU in NumPy, straight from the formulas (r, z, n blocks side by side)."""
    h_n, inputs = [], x
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        h, outs = h0[layer], []
        for xt in inputs:
            i_r, i_z, i_n = np.split(xt @ w_ih + b_ih, 3, axis=1)
            h_r, h_z, h_n_ = np.split(h @ w_hh + b_hh, 3, axis=1)
            r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
            n = np.tanh(i_n + r * h_n_)
            h = (1 - z) * n + z * h
            outs.append(h)
        h_n.append(h)
        inputs = outs
    return np.stack(inputs), np.stack(h_n)


def _weights(cells):
    return [tuple(p.numpy() if p is not None else 0.0
                  for p in (c.W_ih, c.W_hh, c.bias_ih, c.bias_hh)) for c in cells]


@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_matches_numpy(device, with_h0, bias):
    rng = np.random.default_rng(3)
    x, h0 = rng.standard_normal((4, 3, 2)), rng.standard_normal((2, 3, 5))
    gru = nn.GRU(2, 5, num_layers=2, bias=bias, device=device, dtype=F64)
    out, h_n = gru(tensor(x, device), tensor(h0, device) if with_h0 else None)
    ref_out, ref_h = gru_ref(x, h0 if with_h0 else np.zeros_like(h0), _weights(gru.gru_cells))
    assert out.shape == (4, 3, 5) and h_n.shape == (2, 3, 5)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy(), ref_h, rtol=1e-10, atol=1e-12)


def test_gru_cell_is_one_step_of_the_layer(device):
    rng = np.random.default_rng(4)
    cell = nn.GRUCell(3, 4, device=device, dtype=F64)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    ref_out, _ = gru_ref(x[None], h[None], _weights([cell]))
    np.testing.assert_allclose(cell(tensor(x, device), tensor(h, device)).numpy(), ref_out[0],
                               rtol=1e-12)
    zero = cell(tensor(x, device)).numpy()
    np.testing.assert_allclose(zero, gru_ref(x[None], np.zeros((1, 2, 4)), _weights([cell]))[0][0],
                               rtol=1e-12)


def test_gru_layout_and_draw_order():
    """W_ih (in, 3h), W_hh (h, 3h), biases (3h,), uniform(±1/√h) drawn per layer in the
    course's order W_ih, W_hh, bias_ih, bias_hh; the cells live in ``gru_cells``."""
    np.random.seed(5)
    hidden, k = 3, math.sqrt(1 / 3)
    shapes = [(2, 9), (3, 9), (9,), (9,), (3, 9), (3, 9), (9,), (9,)]
    draws = [np.random.rand(*s) * 2 * k - k for s in shapes]
    np.random.seed(5)
    gru = nn.GRU(2, hidden, num_layers=2, dtype=F64)
    assert [n for n, _ in gru.named_parameters()] == [
        f"gru_cells.{i}.{w}" for i in range(2) for w in ("W_ih", "W_hh", "bias_ih", "bias_hh")]
    for p, ref in zip(gru.parameters(), draws):
        np.testing.assert_allclose(p.numpy(), ref)
    assert [p.shape for p in nn.GRU(4, 5, bias=False).parameters()] == [(4, 15), (5, 15)]


@given(n=small, fin=small, hidden=small, bias=st.booleans(), seed=seeds)
def test_gru_cell_gradient(device, n, fin, hidden, bias, seed):
    rng = np.random.default_rng(seed)
    cell = nn.GRUCell(fin, hidden, bias=bias, device=device, dtype=F64)
    check_module(cell, x64(rng, device, n, fin), x64(rng, device, n, hidden))


@given(seq=st.integers(1, 2), n=st.integers(1, 2), fin=st.integers(1, 2), hidden=st.integers(1, 2),
       layers=st.integers(1, 2), with_h0=st.booleans(), batch_first=st.booleans(), seed=seeds)
def test_gru_gradient(device, seq, n, fin, hidden, layers, with_h0, batch_first, seed):
    rng = np.random.default_rng(seed)
    gru = nn.GRU(fin, hidden, num_layers=layers, device=device, dtype=F64, batch_first=batch_first)
    inputs = [x64(rng, device, n, seq, fin) if batch_first else x64(rng, device, seq, n, fin)]
    if with_h0:
        inputs.append(x64(rng, device, layers, n, hidden))
    check_module(gru, *inputs, out=lambda oh: ndl.make_tuple(*oh))


def _state(kind, rng, device, layers, n, hidden):
    if kind == "LSTM":
        return (tensor(rng.standard_normal((layers, n, hidden)), device),
                tensor(rng.standard_normal((layers, n, hidden)), device))
    return tensor(rng.standard_normal((layers, n, hidden)), device)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_batch_first_is_the_transposed_sequence(device, kind):
    rng = np.random.default_rng(6)
    np.random.seed(1)
    seq_first = getattr(nn, kind)(3, 4, num_layers=2, device=device, dtype=F64)
    np.random.seed(1)
    batch_first = getattr(nn, kind)(3, 4, num_layers=2, device=device, dtype=F64,
                                    batch_first=True)
    x = rng.standard_normal((5, 2, 3))
    state = _state(kind, rng, device, 2, 2, 4)
    out_s, h_s = seq_first(tensor(x, device), state)
    out_b, h_b = batch_first(tensor(x.transpose(1, 0, 2).copy(), device), state)
    assert out_b.shape == (2, 5, 4)
    np.testing.assert_allclose(out_b.numpy(), out_s.numpy().transpose(1, 0, 2), rtol=1e-12)
    flat = (lambda h: [t.numpy() for t in h]) if kind == "LSTM" else (lambda h: [h.numpy()])
    for a, b in zip(flat(h_s), flat(h_b)):  # states stay (num_layers, N, hidden)
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert "batch_first=True" in repr(batch_first)
    with pytest.raises(ndl.NeedleError, match=r"\(N, seq_len, 3\), got shape \(5, 2, 2\)"):
        batch_first(ndl.Tensor(np.zeros((5, 2, 2))))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_stacked_layers_refuse_bad_arguments(kind):
    layer = getattr(nn, kind)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ndl.NeedleError, match=f"{kind}: num_layers must be an int >= 1"):
            layer(3, 4, num_layers=bad)
    x = ndl.Tensor(np.zeros((2, 3, 3)))
    with pytest.raises(ndl.NeedleError, match=rf"{kind}: initial state must have shape "
                                              rf".*\(1, 3, 4\), got \(1, 2, 4\)"):
        h = ndl.Tensor(np.zeros((1, 2, 4)))
        layer(3, 4)(x, (h, h) if kind == "LSTM" else h)
    with pytest.raises(ndl.NeedleError, match=r"GRUCell\(3, 4.*hidden state must have shape"):
        nn.GRUCell(3, 4)(ndl.Tensor(np.zeros((2, 3))), ndl.Tensor(np.zeros((2, 3))))


def test_lstm_state_must_be_a_pair():
    with pytest.raises(ndl.NeedleError, match=r"LSTM: the initial state must be a pair"):
        nn.LSTM(3, 4)(ndl.Tensor(np.zeros((2, 1, 3))), ndl.Tensor(np.zeros((1, 1, 4))))


@pytest.mark.parametrize("module", ["needle.nn.rnn", "needle.nn.container", "needle.optim.adam",
                                    "needle.optim.sgd", "needle.interop",
                                    "needle.nn.torch_weights"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0, result
