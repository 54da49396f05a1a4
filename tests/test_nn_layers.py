"""Layer forward passes against NumPy references, initialisation order, running
statistics, dropout statistics and errors on wrong input."""

from __future__ import annotations

import math

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest

F64 = "float64"


def tensor(a: np.ndarray, device, requires_grad: bool = False) -> ndl.Tensor:
    return ndl.Tensor(a, device=device, dtype=a.dtype, requires_grad=requires_grad)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# -- initialisation follows the course's draw order ----------------------------------
def test_linear_draws_weight_then_bias_with_course_bounds():
    np.random.seed(5)
    u_w, u_b = np.random.rand(7, 4), np.random.rand(4, 1)
    np.random.seed(5)
    layer = nn.Linear(7, 4)
    bw, bb = math.sqrt(6 / 7), math.sqrt(6 / 4)  # √2·√(3/fan_in)
    np.testing.assert_allclose(layer.weight.numpy(), u_w * 2 * bw - bw, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), (u_b * 2 * bb - bb).reshape(1, 4), rtol=1e-6)
    assert nn.Linear(3, 2, bias=False).bias is None


def test_conv_init_shapes_and_bounds():
    np.random.seed(1)
    u_w, u_b = np.random.rand(3, 3, 2, 5), np.random.rand(5)
    np.random.seed(1)
    conv = nn.Conv(2, 5, 3, dtype=F64)
    bound = math.sqrt(2) * math.sqrt(3 / (2 * 9))
    np.testing.assert_allclose(conv.weight.numpy(), u_w * 2 * bound - bound)
    b = 1 / math.sqrt(2 * 9)
    np.testing.assert_allclose(conv.bias.numpy(), u_b * 2 * b - b)
    assert nn.Conv(2, 5, (3, 3), stride=(2, 2)).stride == 2
    assert nn.Conv(2, 5, (3, 1)).weight.shape == (3, 1, 2, 5)  # rectangular kernels work


def test_rnn_and_lstm_draw_w_ih_w_hh_bias_ih_bias_hh_per_layer():
    np.random.seed(2)
    hidden, k = 3, math.sqrt(1 / 3)
    shapes = [(2, 12), (3, 12), (12,), (12,), (3, 12), (3, 12), (12,), (12,)]
    draws = [np.random.rand(*s) * 2 * k - k for s in shapes]
    np.random.seed(2)
    lstm = nn.LSTM(2, hidden, num_layers=2, dtype=F64)
    assert [n for n, _ in lstm.named_parameters()] == [
        f"lstm_cells.{i}.{w}" for i in range(2) for w in ("W_ih", "W_hh", "bias_ih", "bias_hh")]
    for p, ref in zip(lstm.parameters(), draws):
        np.testing.assert_allclose(p.numpy(), ref)
    rnn = nn.RNN(4, 5, num_layers=3, bias=False)
    assert [p.shape for p in rnn.parameters()] == [(4, 5), (5, 5), (5, 5), (5, 5), (5, 5), (5, 5)]


# -- forward passes -------------------------------------------------------------------------
def test_linear_identity_flatten_activations(device):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 2, 2))
    flat = nn.Flatten()(tensor(x, device))
    np.testing.assert_array_equal(flat.numpy(), x.reshape(2, 12))
    layer = nn.Linear(12, 5, device=device, dtype=F64)
    out = layer(flat)
    np.testing.assert_allclose(out.numpy(), x.reshape(2, 12) @ layer.weight.numpy()
                               + layer.bias.numpy(), rtol=1e-12)
    batched = layer(tensor(rng.standard_normal((4, 3, 12)), device))
    assert batched.shape == (4, 3, 5)
    z = x.reshape(2, 12)
    np.testing.assert_allclose(nn.ReLU()(flat).numpy(), np.maximum(z, 0))
    np.testing.assert_allclose(nn.Tanh()(flat).numpy(), np.tanh(z), rtol=1e-12)
    np.testing.assert_allclose(nn.Sigmoid()(flat).numpy(), sigmoid(z), rtol=1e-12)
    assert nn.Identity()(flat) is flat


def test_sequential_and_residual(device):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    lin = nn.Linear(4, 4, device=device, dtype=F64)
    model = nn.Residual(nn.Sequential(lin, nn.ReLU()))
    w, b = lin.weight.numpy(), lin.bias.numpy()
    np.testing.assert_allclose(model(tensor(x, device)).numpy(), np.maximum(x @ w + b, 0) + x,
                               rtol=1e-12)
    assert len(model.fn) == 2 and model.fn[0] is lin
    assert nn.Sequential()(tensor(x, device)).shape == (3, 4)


def layer_norm_ref(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def test_layernorm_matches_numpy(device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 6)) * 3 + 1
    ln = nn.LayerNorm1d(6, eps=1e-3, device=device, dtype=F64)
    ln.weight.data = tensor(rng.standard_normal(6), device)
    ln.bias.data = tensor(rng.standard_normal(6), device)
    np.testing.assert_allclose(ln(tensor(x, device)).numpy(),
                               layer_norm_ref(x, ln.weight.numpy(), ln.bias.numpy(), 1e-3),
                               rtol=1e-10, atol=1e-12)


def test_batchnorm1d_running_statistics_after_several_steps(device):
    rng = np.random.default_rng(3)
    bn = nn.BatchNorm1d(4, eps=1e-4, momentum=0.3, device=device, dtype=F64)
    mean, var = np.zeros(4), np.ones(4)
    for _ in range(5):
        x = rng.standard_normal((6, 4)) * [1, 2, 3, 4] + [0, -1, 5, 2]
        out = bn(tensor(x, device))
        mean = 0.7 * mean + 0.3 * x.mean(0)
        var = 0.7 * var + 0.3 * x.var(0)  # biased, as the course's reference values
        np.testing.assert_allclose(out.numpy(), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-4),
                                   rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-12)
    assert not bn.running_mean.requires_grad and bn.running_mean.op is None
    bn.eval()
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(bn(tensor(x, device)).numpy(), (x - mean) / np.sqrt(var + 1e-4),
                               rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean.numpy(), mean)  # eval does not update


def test_batchnorm_updates_build_no_graph(device):
    bn = nn.BatchNorm1d(3, device=device, dtype=F64)
    x = tensor(np.random.default_rng(4).standard_normal((4, 3)), device, requires_grad=True)
    bn(x).sum().backward()
    assert bn.running_mean.op is None and bn.running_var.op is None
    assert not bn.running_var.requires_grad


def test_batchnorm2d_normalises_each_channel_over_n_h_w(device):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5)) * np.array([1, 5, 0.2])[None, :, None, None]
    bn = nn.BatchNorm2d(3, device=device, dtype=F64)
    out = bn(tensor(x, device)).numpy()
    mean = x.mean((0, 2, 3), keepdims=True)
    var = x.var((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean.ravel(), rtol=1e-12)


def test_dropout_statistics_and_scaling(device):
    p = 0.3
    drop = nn.Dropout(p)
    x = np.full((200, 100), 2.0)
    out = drop(tensor(x, device)).numpy()
    kept = out != 0
    assert abs(kept.mean() - (1 - p)) < 0.01  # 20000 draws: sd of the mean ~0.003
    np.testing.assert_allclose(out[kept], 2.0 / (1 - p), rtol=1e-12)
    drop.eval()
    same = tensor(x, device)
    assert drop(same) is same
    assert np.all(nn.Dropout(1.0)(tensor(x, device)).numpy() == 0)
    with pytest.raises(ndl.NeedleError, match=r"p is a probability in \[0, 1\]"):
        nn.Dropout(1.5)


def test_dropout_uses_the_course_draw_on_cpu():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    np.random.seed(9)
    mask = np.random.rand(2, 3) <= 0.6
    np.random.seed(9)
    out = nn.Dropout(0.4)(ndl.Tensor(x, dtype=F64)).numpy()
    np.testing.assert_allclose(out, x * mask / 0.6, rtol=1e-12)


def softmax_loss_ref(z: np.ndarray, y: np.ndarray) -> float:
    m = z.max(1, keepdims=True)
    logsumexp = np.log(np.exp(z - m).sum(1)) + m[:, 0]
    return float(np.mean(logsumexp - z[np.arange(len(y)), y]))


@pytest.mark.parametrize("label_dtype", ["int64", "float32"])
def test_softmax_loss_matches_numpy_with_int_or_float_labels(device, label_dtype):
    rng = np.random.default_rng(6)
    z, y = rng.standard_normal((7, 5)) * 4, rng.integers(0, 5, 7)
    loss = nn.SoftmaxLoss()(tensor(z, device), ndl.Tensor(y, device=device, dtype=label_dtype))
    assert loss.shape == () and loss.dtype == np.float64
    np.testing.assert_allclose(loss.numpy(), softmax_loss_ref(z, y), rtol=1e-12)


def test_softmax_loss_is_stable_for_huge_logits(device):
    z = np.array([[1e4, 0.0, -1e4], [0.0, 5e3, 1e4]])
    loss = nn.SoftmaxLoss()(tensor(z, device), ndl.Tensor([0, 1], device=device, dtype="int64"))
    np.testing.assert_allclose(loss.numpy(), (0.0 + 5e3) / 2, rtol=1e-12)


@pytest.mark.parametrize("labels, dtype", [
    ([0, 1, 4], "int64"),
    ([0, -1, 2], "int64"),  # NumPy would index from the end
    ([0, 1, 2**40], "int64"),
    ([0, -1.0, 2], "float32"),
    ([3, 5, 0], "int32"),
])
def test_softmax_loss_rejects_labels_out_of_range(device, labels, dtype):
    # On cuda this is the only guard: CuPy wraps out-of-range indices without a word.
    logits = ndl.Tensor(np.zeros((3, 4)), device=device)
    with pytest.raises(ndl.NeedleError, match=r"class ids must lie in \[0, 4\)"):
        nn.SoftmaxLoss()(logits, ndl.Tensor(labels, device=device, dtype=dtype))


def test_softmax_loss_rejects_bad_labels():
    logits = ndl.Tensor(np.zeros((3, 4)))
    with pytest.raises(ndl.NeedleError, match=r"labels must have shape \(3,\).*got shape \(2,\)"):
        nn.SoftmaxLoss()(logits, ndl.Tensor([0, 1], dtype="int64"))
    with pytest.raises(ndl.NeedleError, match=r"logits of shape \(N, classes\)"):
        nn.SoftmaxLoss()(ndl.Tensor(np.zeros(3)), ndl.Tensor([0], dtype="int64"))


def conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """Direct NCHW cross-correlation with 'same' padding k//2, one output pixel at a time."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho = (x.shape[2] + 2 * p - k) // stride + 1
    wo = (x.shape[3] + 2 * p - k) // stride + 1
    out = np.zeros((x.shape[0], w.shape[3], ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("ncij,ijco->no", patch, w) + b
    return out


@pytest.mark.parametrize("k, stride", [(3, 1), (3, 2), (1, 1), (5, 2)])
def test_conv_matches_direct_correlation(device, k, stride):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 7, 6))
    conv = nn.Conv(3, 4, k, stride=stride, device=device, dtype=F64)
    out = conv(tensor(x, device))
    np.testing.assert_allclose(out.numpy(), conv_ref(x, conv.weight.numpy(), conv.bias.numpy(),
                                                     stride), rtol=1e-10, atol=1e-12)
    assert nn.Conv(3, 4, k, stride, bias=False, device=device)(tensor(x.astype(np.float32), device)) \
        .shape == out.shape


def rnn_ref(x, h0, weights, act):
    """Multi-layer RNN in NumPy: weights[layer] = (W_ih, W_hh, b_ih, b_hh)."""
    h_n, inputs = [], x
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        h, outs = h0[layer], []
        for xt in inputs:
            h = act(xt @ w_ih + b_ih + h @ w_hh + b_hh)
            outs.append(h)
        h_n.append(h)
        inputs = outs
    return np.stack(inputs), np.stack(h_n)


def lstm_ref(x, h0, c0, weights):
    h_n, c_n, inputs = [], [], x
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        h, c, outs = h0[layer], c0[layer], []
        for xt in inputs:
            i, f, g, o = np.split(xt @ w_ih + b_ih + h @ w_hh + b_hh, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            outs.append(h)
        h_n.append(h)
        c_n.append(c)
        inputs = outs
    return np.stack(inputs), np.stack(h_n), np.stack(c_n)


def _weights(cells):
    return [tuple(p.numpy() for p in (c.W_ih, c.W_hh, c.bias_ih, c.bias_hh)) for c in cells]


@pytest.mark.parametrize("nonlinearity, act", [("tanh", np.tanh), ("relu", lambda v: np.maximum(v, 0))])
@pytest.mark.parametrize("with_h0", [True, False])
def test_rnn_matches_numpy(device, nonlinearity, act, with_h0):
    rng = np.random.default_rng(8)
    x, h0 = rng.standard_normal((4, 3, 2)), rng.standard_normal((2, 3, 5))
    rnn = nn.RNN(2, 5, num_layers=2, nonlinearity=nonlinearity, device=device, dtype=F64)
    out, h_n = rnn(tensor(x, device), tensor(h0, device) if with_h0 else None)
    ref_out, ref_h = rnn_ref(x, h0 if with_h0 else np.zeros_like(h0), _weights(rnn.rnn_cells), act)
    assert out.shape == (4, 3, 5) and h_n.shape == (2, 3, 5)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy(), ref_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_state", [True, False])
def test_lstm_matches_numpy(device, with_state):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 4))
    h0, c0 = rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 2, 3))
    lstm = nn.LSTM(4, 3, num_layers=2, device=device, dtype=F64)
    state = (tensor(h0, device), tensor(c0, device)) if with_state else None
    out, (h_n, c_n) = lstm(tensor(x, device), state)
    if not with_state:
        h0, c0 = np.zeros_like(h0), np.zeros_like(c0)
    refs = lstm_ref(x, h0, c0, _weights(lstm.lstm_cells))
    for got, ref in zip((out, h_n, c_n), refs):
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_cells_without_bias(device):
    rng = np.random.default_rng(10)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    cell = nn.RNNCell(3, 4, bias=False, device=device, dtype=F64)
    np.testing.assert_allclose(cell(tensor(x, device), tensor(h, device)).numpy(),
                               np.tanh(x @ cell.W_ih.numpy() + h @ cell.W_hh.numpy()), rtol=1e-12)
    lstm = nn.LSTMCell(3, 4, bias=False, device=device, dtype=F64)
    h1, c1 = lstm(tensor(x, device))
    zero = np.zeros(16)
    ref = lstm_ref(x[None], np.zeros((1, 2, 4)), np.zeros((1, 2, 4)),
                   [(lstm.W_ih.numpy(), lstm.W_hh.numpy(), zero, zero)])
    np.testing.assert_allclose(h1.numpy(), ref[1][0], rtol=1e-12)
    np.testing.assert_allclose(c1.numpy(), ref[2][0], rtol=1e-12)


def test_embedding_equals_course_one_hot_product(device):
    emb = nn.Embedding(6, 3, device=device, dtype=F64)
    ids = np.array([[0, 5, 2], [2, 2, 1]])
    for labels in (ndl.Tensor(ids, device=device, dtype="int64"),
                   ndl.Tensor(ids, device=device, dtype="float32")):
        out = emb(labels)
        w = emb.weight.numpy()
        assert out.shape == (2, 3, 3)
        np.testing.assert_array_equal(out.numpy(), w[ids])
        np.testing.assert_allclose(out.numpy(), (np.eye(6)[ids.ravel()] @ w).reshape(2, 3, 3))
    g = np.random.default_rng(11).standard_normal((2, 3, 3))
    emb(ndl.Tensor(ids, device=device, dtype="int64")).backward(tensor(g, device))
    expected = np.zeros((6, 3))
    np.add.at(expected, ids.ravel(), g.reshape(6, 3))  # the repeated id 2 accumulates
    np.testing.assert_allclose(emb.weight.grad.numpy(), expected, rtol=1e-12)
    with pytest.raises(ndl.NeedleError, match=r"Embedding\(6, 3\): class ids must lie in"):
        emb(ndl.Tensor([6], dtype="int64"))


# -- wrong input shapes name the layer and both shapes ----------------------------------
@pytest.mark.parametrize("layer, x, expected", [
    (nn.Linear(784, 10), np.zeros((32, 100)), r"Linear\(in_features=784, out_features=10, "
                                               r"bias=True\) expects input of shape \(N, 784\), "
                                               r"got shape \(32, 100\)"),
    (nn.Linear(3, 2), np.zeros(3), r"Linear.*got shape \(3,\)"),
    (nn.BatchNorm1d(4), np.zeros((2, 5)), r"BatchNorm1d\(4.*\(N, 4\), got shape \(2, 5\)"),
    (nn.BatchNorm2d(3), np.zeros((2, 4, 5, 5)), r"BatchNorm2d\(3.*\(N, 3, H, W\), got shape"),
    (nn.LayerNorm1d(4), np.zeros((2, 3)), r"LayerNorm1d\(4.*\(N, 4\), got shape \(2, 3\)"),
    (nn.Conv(3, 8, 3), np.zeros((1, 4, 8, 8)), r"Conv\(3, 8.*\(N, 3, H, W\), got shape"),
    (nn.RNN(3, 4), np.zeros((5, 2, 2)), r"RNN\(3, 4.*\(seq_len, N, 3\), got shape \(5, 2, 2\)"),
    (nn.LSTM(3, 4), np.zeros((2, 3)), r"LSTM\(3, 4.*got shape \(2, 3\)"),
    (nn.RNNCell(3, 4), np.zeros((2, 2)), r"RNNCell\(3, 4.*\(N, 3\), got shape \(2, 2\)"),
])
def test_wrong_input_shape_names_layer_and_shapes(layer, x, expected):
    with pytest.raises(ndl.NeedleError, match=expected):
        layer(ndl.Tensor(x))


def test_wrong_initial_state_shapes():
    x = ndl.Tensor(np.zeros((2, 3, 4)))
    with pytest.raises(ndl.NeedleError, match=r"RNN: initial state must have shape .*\(1, 3, 5\)"):
        nn.RNN(4, 5)(x, ndl.Tensor(np.zeros((1, 2, 5))))
    with pytest.raises(ndl.NeedleError, match=r"hidden state must have shape \(3, 5\)"):
        nn.LSTMCell(4, 5)(ndl.Tensor(np.zeros((3, 4))), (ndl.Tensor(np.zeros((3, 4))),) * 2)
    with pytest.raises(ndl.NeedleError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNNCell(2, 2, nonlinearity="gelu")


def test_float64_input_promotes_through_a_float32_layer():
    layer = nn.Linear(3, 2)
    out = layer(ndl.Tensor(np.ones((1, 3)), dtype=F64))
    assert out.dtype == F64
    out.sum().backward()
    assert layer.weight.grad.dtype == np.float32 and layer.bias.grad.dtype == np.float32
