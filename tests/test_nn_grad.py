"""Every layer's gradient, with respect to its inputs and every parameter, checked by
``needle.testing.gradcheck`` (central differences, float64) under hypothesis-drawn
shapes, on every usable backend."""

from __future__ import annotations

import needle as ndl
import needle.nn as nn
import numpy as np
from conftest import check_module, seeds, small, x64
from hypothesis import assume, given
from hypothesis import strategies as st

F64 = "float64"


@given(n=small, fin=small, fout=small, bias=st.booleans(), seed=seeds)
def test_linear(device, n, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    check_module(nn.Linear(fin, fout, bias=bias, device=device, dtype=F64), x64(rng, device, n, fin))


@given(n=small, d=st.integers(1, 4), seed=seeds)
def test_activations_flatten_and_residual_sequential(device, n, d, seed):
    rng = np.random.default_rng(seed)
    x = x64(rng, device, n, d)
    for layer in (nn.Tanh(), nn.Sigmoid(), nn.ReLU(), nn.Identity()):
        check_module(layer, x)
    check_module(nn.Flatten(), x64(rng, device, n, d, 2))
    model = nn.Residual(nn.Sequential(nn.Linear(d, 3, device=device, dtype=F64), nn.Tanh(),
                                      nn.Linear(3, d, device=device, dtype=F64)))
    check_module(model, x)


@given(n=small, d=st.integers(1, 4), seed=seeds)
def test_layernorm(device, n, d, seed):
    rng = np.random.default_rng(seed)
    ln = nn.LayerNorm1d(d, device=device, dtype=F64)
    ln.weight.data = x64(rng, device, d)
    ln.bias.data = x64(rng, device, d)
    check_module(ln, x64(rng, device, n, d))


@given(n=st.integers(2, 4), d=small, train=st.booleans(), seed=seeds)
def test_batchnorm1d_train_and_eval(device, n, d, train, seed):
    rng = np.random.default_rng(seed)
    bn = nn.BatchNorm1d(d, device=device, dtype=F64)
    bn.weight.data = x64(rng, device, d)
    bn.running_mean = x64(rng, device, d)
    bn.running_var = ndl.Tensor(rng.uniform(0.5, 2.0, d), device=device, dtype=F64)
    bn.train(train)
    check_module(bn, x64(rng, device, n, d))


@given(n=st.integers(1, 2), c=small, h=st.integers(1, 3), w=st.integers(1, 3), seed=seeds)
def test_batchnorm2d(device, n, c, h, w, seed):
    assume(n * h * w > 1)  # one value per channel is an error in training (PyTorch's rule)
    rng = np.random.default_rng(seed)
    bn = nn.BatchNorm2d(c, device=device, dtype=F64)
    bn.weight.data = x64(rng, device, c)
    check_module(bn, x64(rng, device, n, c, h, w) * 2.0)


@given(n=small, d=st.integers(1, 4), p=st.sampled_from([0.0, 0.2, 0.5]), seed=seeds)
def test_dropout_with_a_fixed_mask(device, n, d, p, seed):
    rng = np.random.default_rng(seed)
    check_module(nn.Dropout(p), x64(rng, device, n, d), before=lambda: device.backend.seed(seed))


@given(n=small, k=st.integers(1, 4), seed=seeds)
def test_softmax_loss(device, n, k, seed):
    rng = np.random.default_rng(seed)
    labels = ndl.Tensor(rng.integers(0, k, n), device=device, dtype="int64", requires_grad=False)
    check_module(nn.SoftmaxLoss(), x64(rng, device, n, k) * 3.0, labels)


@given(n=st.integers(1, 2), cin=st.integers(1, 2), cout=st.integers(1, 2),
       k=st.sampled_from([1, 3]), stride=st.integers(1, 2), size=st.integers(3, 4),
       bias=st.booleans(), seed=seeds)
def test_conv(device, n, cin, cout, k, stride, size, bias, seed):
    rng = np.random.default_rng(seed)
    conv = nn.Conv(cin, cout, k, stride=stride, bias=bias, device=device, dtype=F64)
    check_module(conv, x64(rng, device, n, cin, size, size))


@given(case=st.sampled_from([((2, 3), (1, 2), (1, 0), (2, 1)), (3, 2, 0, 1), ((1, 2), 1, 1, 2)]),
       seed=seeds)
def test_conv_options(device, case, seed):
    kernel, stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    conv = nn.Conv(2, 3, kernel, stride, device=device, dtype=F64, padding=padding,
                   dilation=dilation)
    check_module(conv, x64(rng, device, 2, 2, 5, 6))


@given(pool=st.sampled_from([nn.MaxPool2d((2, 3), (1, 2), 1), nn.AvgPool2d(3, 2, 1)]),
       seed=seeds)
def test_pooling(device, pool, seed):
    values = np.random.default_rng(seed).permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) / 10.0
    check_module(pool, ndl.Tensor(values, device=device, dtype=F64))


@given(n=small, fin=small, hidden=small, nonlinearity=st.sampled_from(["tanh", "relu"]),
       bias=st.booleans(), seed=seeds)
def test_rnn_cell(device, n, fin, hidden, nonlinearity, bias, seed):
    rng = np.random.default_rng(seed)
    cell = nn.RNNCell(fin, hidden, bias=bias, nonlinearity=nonlinearity, device=device, dtype=F64)
    check_module(cell, x64(rng, device, n, fin), x64(rng, device, n, hidden))


@given(n=small, fin=small, hidden=small, bias=st.booleans(), seed=seeds)
def test_lstm_cell(device, n, fin, hidden, bias, seed):
    rng = np.random.default_rng(seed)
    cell = nn.LSTMCell(fin, hidden, bias=bias, device=device, dtype=F64)
    state = (x64(rng, device, n, hidden), x64(rng, device, n, hidden))
    check_module(_StateAsArgs(cell), x64(rng, device, n, fin), *state,
                 out=lambda hc: ndl.make_tuple(*hc))


class _StateAsArgs(nn.Module):
    """``cell(x, h, c)`` for ``cell(x, (h, c))``: gradcheck passes inputs one by one."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: ndl.Tensor, h: ndl.Tensor | None = None, c: ndl.Tensor | None = None):
        return self.inner(x, None if h is None else (h, c))


@given(seq=st.integers(1, 2), n=st.integers(1, 2), fin=st.integers(1, 2), hidden=st.integers(1, 2),
       layers=st.integers(1, 2), nonlinearity=st.sampled_from(["tanh", "relu"]),
       with_h0=st.booleans(), seed=seeds)
def test_rnn(device, seq, n, fin, hidden, layers, nonlinearity, with_h0, seed):
    rng = np.random.default_rng(seed)
    rnn = nn.RNN(fin, hidden, num_layers=layers, nonlinearity=nonlinearity, device=device,
                 dtype=F64)
    inputs = [x64(rng, device, seq, n, fin)]
    if with_h0:
        inputs.append(x64(rng, device, layers, n, hidden))
    check_module(rnn, *inputs, out=lambda oh: ndl.make_tuple(*oh))


@given(seq=st.integers(1, 2), n=st.integers(1, 2), fin=st.integers(1, 2), hidden=st.integers(1, 2),
       layers=st.integers(1, 2), with_state=st.booleans(), seed=seeds)
def test_lstm(device, seq, n, fin, hidden, layers, with_state, seed):
    rng = np.random.default_rng(seed)
    lstm = _StateAsArgs(nn.LSTM(fin, hidden, num_layers=layers, device=device, dtype=F64))
    inputs = [x64(rng, device, seq, n, fin)]
    if with_state:
        inputs += [x64(rng, device, layers, n, hidden), x64(rng, device, layers, n, hidden)]
    check_module(lstm, *inputs, out=lambda o: ndl.make_tuple(o[0], *o[1]))


@given(num=st.integers(1, 5), dim=small, shape=st.lists(st.integers(1, 3), min_size=1,
                                                         max_size=2), seed=seeds)
def test_embedding(device, num, dim, shape, seed):
    rng = np.random.default_rng(seed)
    ids = ndl.Tensor(rng.integers(0, num, shape), device=device, dtype="int64",
                     requires_grad=False)
    check_module(nn.Embedding(num, dim, device=device, dtype=F64), ids)
