"""The hw4_extra Transformer layers: values against NumPy float64 references written
from the formulas, gradients by finite differences (float64), causality as a property,
the course's parameter order, errors, agreement across backends, and a CLI run."""

from __future__ import annotations

import importlib
import json

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest
from conftest import check_module, data_dir, t64, x64
from hypothesis import given
from hypothesis import strategies as st
from needle import init
from needle.models import LanguageModel

F64 = "float64"
OTHERS = [info.name for info in ndl.backends() if info.usable and info.name != "cpu"]
BACKENDS = OTHERS or [pytest.param("none", marks=pytest.mark.skip(
    reason="only cpu is usable here: cross-backend agreement needs a second usable backend"))]


# -- NumPy references ---------------------------------------------------------------------------

def ref_attention(q, k, v, causal):
    """softmax(q kᵀ / √D + mask) v in float64; query i sees keys j ≤ i + (Tk - Tq)."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    tq, tk = scores.shape[-2:]
    if causal:
        future = np.arange(tk)[None, :] > np.arange(tq)[:, None] + (tk - tq)
        blind = future.all(-1, keepdims=True)  # no key to see: the course's finite mask
        scores = np.where(blind, 0.0, np.where(future, -np.inf, scores))  # makes it uniform
    e = np.exp(scores - scores.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    return probs @ v, probs


def ref_layernorm(x, ln):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + ln.eps) * ln.weight.numpy() + ln.bias.numpy()


def ref_attention_layer(layer, q, k, v):
    def heads(x):
        b, t, _ = x.shape
        return x.reshape(b, t, layer.num_head, layer.dim_head).transpose(0, 2, 1, 3)

    qh = heads(ref_layernorm(q, layer.prenorm_q) @ layer.q_projection.weight.numpy())
    kh = heads(ref_layernorm(k, layer.prenorm_k) @ layer.k_projection.weight.numpy())
    vh = heads(ref_layernorm(v, layer.prenorm_v) @ layer.v_projection.weight.numpy())
    x, _ = ref_attention(qh, kh, vh, layer.attn.causal)
    b, t = q.shape[:2]
    return x.transpose(0, 2, 1, 3).reshape(b, t, -1) @ layer.out_projection.weight.numpy()


def ref_transformer_layer(block, x):
    x = x + ref_attention_layer(block.attention, x, x, x)
    ln, lin1, _, _, lin2, _ = block.mlp.modules
    h = np.maximum(ref_layernorm(x, ln) @ lin1.weight.numpy() + lin1.bias.numpy(), 0)
    return x + h @ lin2.weight.numpy() + lin2.bias.numpy()


# -- values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("tq, tk", [(5, 5), (3, 6), (6, 3)])
def test_attention_matches_the_formula(device, causal, tq, tk):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s) for s in [(2, 3, tq, 4), (2, 3, tk, 4), (2, 3, tk, 5)])
    result, probs = nn.MultiHeadAttention(causal=causal, device=device)(
        t64(q, device), t64(k, device), t64(v, device))
    want, want_probs = ref_attention(q, k, v, causal)
    np.testing.assert_allclose(probs.numpy(), want_probs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result.numpy(), want, rtol=1e-12, atol=1e-12)
    assert result.dtype == F64 and result.device == ndl.device(device)
    if causal:  # masked weights are exact zeros, not tiny numbers
        assert np.all(probs.numpy()[want_probs == 0] == 0)


def test_attention_softmax_is_stable_at_large_logits():
    q = np.full((1, 1, 2, 2), 1e4, dtype=np.float32)  # q kᵀ / √2 ~ 7e7: exp would overflow
    _, probs = nn.MultiHeadAttention()(ndl.Tensor(q), ndl.Tensor(q), ndl.Tensor(q))
    np.testing.assert_allclose(probs.numpy(), 0.5)


def test_attention_dropout_only_in_training(device):
    rng = np.random.default_rng(1)
    q = t64(rng.standard_normal((2, 2, 6, 3)), device)
    attn = nn.MultiHeadAttention(dropout=0.5, causal=True, device=device)
    _, want = ref_attention(q.numpy(), q.numpy(), q.numpy(), True)
    _, probs = attn(q, q, q)
    p = probs.numpy()
    kept = p != 0
    np.testing.assert_allclose(p[kept], 2 * want[kept], rtol=1e-12)  # kept weights scaled 1/(1-p)
    assert 0.2 < kept[want > 0].mean() < 0.8
    attn.eval()
    np.testing.assert_allclose(attn(q, q, q)[1].numpy(), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cross", [False, True])
def test_attention_layer_matches_the_formula(device, cross):
    rng = np.random.default_rng(2)
    if cross:  # cross-attention: other widths for k, v and the output, other key length
        layer = nn.AttentionLayer(5, 3, 2, k_features=4, v_features=6, out_features=7,
                                  causal=False, device=device, dtype=F64)
        q, k, v = (rng.standard_normal(s) for s in [(2, 3, 5), (2, 4, 4), (2, 4, 6)])
        got = layer(t64(q, device), t64(k, device), t64(v, device))
    else:
        layer = nn.AttentionLayer(5, 3, 2, device=device, dtype=F64)  # causal by default
        q = k = v = rng.standard_normal((2, 4, 5))
        got = layer(t64(q, device))
    for ln in (layer.prenorm_q, layer.prenorm_k, layer.prenorm_v):  # not just ones and zeros
        ln.weight.data = t64(rng.uniform(0.5, 1.5, ln.dim), device)
        ln.bias.data = t64(rng.standard_normal(ln.dim), device)
    got = layer(t64(q, device), t64(k, device), t64(v, device)) if cross else layer(t64(q, device))
    assert got.shape == (2, 3, 7) if cross else (2, 4, 5)
    np.testing.assert_allclose(got.numpy(), ref_attention_layer(layer, q, k, v), rtol=1e-10,
                               atol=1e-12)


def test_transformer_layer_and_model_match_the_formula(device):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 6))
    block = nn.TransformerLayer(6, 2, 3, 8, device=device, dtype=F64)
    np.testing.assert_allclose(block(t64(x, device)).numpy(), ref_transformer_layer(block, x),
                               rtol=1e-10, atol=1e-12)
    model = nn.Transformer(6, 8, 2, num_head=2, dim_head=3, device=device, dtype=F64,
                           batch_first=True, sequence_len=5)
    want = x + model.positional_embedding.weight.numpy()[:4]
    for layer in model.layers.modules:
        want = ref_transformer_layer(layer, want)
    out, state = model(t64(x, device))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(state.numpy(), np.zeros_like(want))
    model.batch_first = False  # (T, B, C) in and out: the same numbers, transposed
    out_t, _ = model(t64(x.transpose(1, 0, 2), device))
    np.testing.assert_allclose(out_t.numpy(), want.transpose(1, 0, 2), rtol=1e-10, atol=1e-12)


def test_course_parameter_order():
    """Seeded like the course, every weight gets the course's random numbers: the
    positional embedding first, then per block the q, k, v, out projections (no bias)
    and the MLP's two linears (weight, then bias)."""
    np.random.seed(7)
    model = nn.Transformer(5, 6, 2, num_head=2, dim_head=3, sequence_len=4)
    np.random.seed(7)
    want = [init.randn(4, 5)]
    for _ in range(2):
        want += [init.kaiming_uniform(5, 6) for _ in range(3)] + [init.kaiming_uniform(6, 5)]
        want += [init.kaiming_uniform(5, 6), init.kaiming_uniform(6, 1),
                 init.kaiming_uniform(6, 5), init.kaiming_uniform(5, 1)]
    got = [p for name, p in model.named_parameters() if "prenorm" not in name
           and not name.endswith("mlp.modules.0.weight") and not name.endswith("mlp.modules.0.bias")]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy().reshape(-1), w.numpy().reshape(-1))


# -- gradients (float64, central differences) -----------------------------------------------------

@given(b=st.integers(1, 2), h=st.integers(1, 2), tq=st.integers(1, 3), tk=st.integers(1, 3),
       d=st.integers(1, 3), causal=st.booleans(), seed=st.integers(0, 2**16))
def test_attention_gradients(device, b, h, tq, tk, d, causal, seed):
    rng = np.random.default_rng(seed)
    attn = nn.MultiHeadAttention(causal=causal, device=device, dtype=F64)
    check_module(attn, x64(rng, device, b, h, tq, d), x64(rng, device, b, h, tk, d),
                 x64(rng, device, b, h, tk, d), out=lambda rp: ndl.make_tuple(*rp))


@given(t=st.integers(1, 3), heads=st.integers(1, 2), dim=st.integers(1, 2),
       causal=st.booleans(), seed=st.integers(0, 2**16))
def test_attention_layer_gradients(device, t, heads, dim, causal, seed):
    rng = np.random.default_rng(seed)
    layer = nn.AttentionLayer(3, heads, dim, k_features=2, out_features=4, causal=causal,
                              device=device, dtype=F64)
    check_module(layer, x64(rng, device, 2, t, 3), x64(rng, device, 2, t + 1, 2),
                 x64(rng, device, 2, t + 1, 3))


@given(t=st.integers(1, 3), dropout=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 2**16))
def test_transformer_layer_gradients_with_a_fixed_dropout_mask(device, t, dropout, seed):
    rng = np.random.default_rng(seed)
    block = nn.TransformerLayer(3, 2, 2, 4, dropout=dropout, device=device, dtype=F64)
    check_module(block, x64(rng, device, 2, t, 3), before=lambda: device.backend.seed(seed))


@given(t=st.integers(1, 3), batch_first=st.booleans(), seed=st.integers(0, 2**16))
def test_transformer_gradients(device, t, batch_first, seed):
    rng = np.random.default_rng(seed)
    model = nn.Transformer(3, 4, 2, num_head=2, dim_head=2, device=device, dtype=F64,
                           batch_first=batch_first, sequence_len=3)
    check_module(model, x64(rng, device, t, 2, 3), out=lambda yh: yh[0])


# -- causality ------------------------------------------------------------------------------------

@given(length=st.integers(2, 6), t=st.data(), layers=st.integers(1, 2),
       seed=st.integers(0, 2**16))
def test_causal_output_at_step_t_ignores_later_inputs(device, length, t, layers, seed):
    step = t.draw(st.integers(0, length - 2), label="t")
    rng = np.random.default_rng(seed)
    model = nn.Transformer(4, 5, layers, num_head=2, dim_head=3, device=device, dtype=F64,
                           batch_first=True, sequence_len=length)
    x = rng.standard_normal((2, length, 4))
    changed = x.copy()
    changed[:, step + 1:] = rng.standard_normal(changed[:, step + 1:].shape) * 10
    before, after = model(t64(x, device))[0].numpy(), model(t64(changed, device))[0].numpy()
    np.testing.assert_array_equal(after[:, :step + 1], before[:, :step + 1])
    assert not np.allclose(after[:, step + 1:], before[:, step + 1:])
    # Without the mask the same change reaches step t: the test above can fail.
    open_model = nn.Transformer(4, 5, layers, num_head=2, dim_head=3, causal=False,
                                device=device, dtype=F64, batch_first=True, sequence_len=length)
    assert not np.allclose(open_model(t64(changed, device))[0].numpy()[:, :step + 1],
                           open_model(t64(x, device))[0].numpy()[:, :step + 1])


@given(length=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_causal_language_model_predicts_from_the_past_only(device, length, seed):
    rng = np.random.default_rng(seed)
    model = LanguageModel(4, 7, 5, num_layers=1, seq_model="transformer", seq_len=length,
                          device=device, dtype=F64)
    ids = rng.integers(0, 7, (length, 3))
    later = ids.copy()
    later[-1] = (later[-1] + 1) % 7

    def logits(a):
        x = ndl.Tensor(a, device=device, dtype="int64", requires_grad=False)
        return model(x)[0].numpy().reshape(length, 3, 7)

    np.testing.assert_array_equal(logits(later)[:-1], logits(ids)[:-1])


# -- the language model, errors -------------------------------------------------------------------

def test_transformer_language_model_trains(device):
    np.random.seed(0)
    model = LanguageModel(8, 11, 16, num_layers=2, seq_model="transformer", seq_len=6,
                          device=device)
    assert model.linear.in_features == 8  # the head reads the embedding width
    ids = np.random.randint(0, 11, (7, 4))
    x = ndl.Tensor(ids[:-1], device=device, dtype="int64", requires_grad=False)
    y = ndl.Tensor(ids[1:].reshape(-1), device=device, dtype="int64", requires_grad=False)
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(5):
        logits, h = model(x)
        assert logits.shape == (24, 11) and h.shape == (6, 4, 8)
        loss = nn.SoftmaxLoss()(logits, y)
        opt.reset_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.numpy()))
    assert losses[-1] < losses[0] * 0.8


def test_bad_inputs_are_named():
    attn = nn.MultiHeadAttention()
    x4 = ndl.Tensor(np.zeros((1, 2, 3, 4)))
    with pytest.raises(ndl.NeedleError, match=r"MultiHeadAttention: q must have shape "
                                              r"\(batch, heads, length, dim\), got shape \(3, 4\)"):
        attn(ndl.Tensor(np.zeros((3, 4))), x4, x4)
    with pytest.raises(ndl.NeedleError, match="q, k, v shapes do not fit"):
        attn(x4, ndl.Tensor(np.zeros((1, 2, 3, 5))), x4)
    layer = nn.AttentionLayer(4, 2, 3)
    with pytest.raises(ndl.NeedleError, match=r"AttentionLayer\(4, 2, 3\): q must have shape "
                                              r"\(batch, length, 4\), got shape \(2, 3, 5\)"):
        layer(ndl.Tensor(np.zeros((2, 3, 5))))
    model = nn.Transformer(4, 8, 1, num_head=2, dim_head=2, sequence_len=3)
    with pytest.raises(ndl.NeedleError, match=r"length 5 is longer than sequence_len=3"):
        model(ndl.Tensor(np.zeros((5, 2, 4))))
    with pytest.raises(ndl.NeedleError, match=r"x must have shape \(length, batch, 4\)"):
        model(ndl.Tensor(np.zeros((5, 2, 3))))
    with pytest.raises(ndl.NeedleError, match="'rnn', 'lstm' or 'transformer'"):
        LanguageModel(4, 10, 6, seq_model="gpt")


def test_course_module_path():
    from needle.nn import nn_transformer
    assert nn_transformer.TransformerLayer is nn.TransformerLayer
    mask = nn.MultiHeadAttention().create_causal_mask(2, 3, ndl.cpu())
    assert mask.shape == (1, 1, 2, 3) and mask[0, 0, 0, 1] == 0 and mask[0, 0, 0, 2] < -1e38


# -- backends -------------------------------------------------------------------------------------

def _agree_with_cpu(other, dtype, tol):
    """The same weights and inputs on cpu and ``other``: outputs and every gradient agree."""
    np.random.seed(0)
    model = nn.Transformer(6, 8, 2, num_head=2, dim_head=3, causal=True, dtype=dtype,
                           batch_first=True, sequence_len=5)
    x = np.random.randn(2, 5, 6)
    up = np.random.randn(2, 5, 6)

    def run(device):
        model.to(device)
        for p in model.parameters():
            p.grad = None
        xt = ndl.Tensor(x, device=device, dtype=dtype)
        out = model(xt)[0]
        out.backward(ndl.Tensor(up, device=device, dtype=dtype, requires_grad=False))
        return [out.numpy(), xt.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]

    want = run(ndl.cpu())
    got = run(other)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"array {i} on {other}")


TOLERANCES = [("float64", 1e-9), ("float32", 1e-4)]


@pytest.mark.parametrize("dtype, tol", TOLERANCES)
@pytest.mark.parametrize("other", BACKENDS)
def test_transformer_agrees_across_backends(other, dtype, tol):
    _agree_with_cpu(ndl.device(other), dtype, tol)


@pytest.fixture
def cuda_shim(tmp_path):
    """The cuda backend's host code over NumPy (test_cuda_shim's stand-in), as a device."""
    device_mod = importlib.import_module("needle.device")  # ndl.device is the function
    CUDABackend = pytest.importorskip("needle_backend_cuda").CUDABackend
    from test_cuda_shim import NumPyAsCuPy

    class ShimCUDA(CUDABackend):
        name = "cudashim"

    backend = ShimCUDA()
    backend._xp, backend._reason = NumPyAsCuPy(tmp_path), None
    device_mod.REGISTRY.register(backend)
    try:
        yield ndl.device("cudashim")
    finally:
        device_mod.REGISTRY._backends.pop("cudashim", None)
        device_mod._DEVICES.pop("cudashim", None)


@pytest.mark.parametrize("dtype, tol", TOLERANCES)
def test_transformer_runs_the_cuda_backends_host_code(cuda_shim, dtype, tol):
    _agree_with_cpu(cuda_shim, dtype, tol)
    q = ndl.Tensor(np.random.randn(1, 2, 4, 3), device=cuda_shim, dtype=dtype)
    _, probs = nn.MultiHeadAttention(dropout=0.5, causal=True)(q, q, q)  # the dropout draw
    assert probs.device == cuda_shim and probs.shape == (1, 2, 4, 4)


# -- the command line -----------------------------------------------------------------------------

PTB = data_dir() / "ptb" / "ptb.test.txt"


@pytest.mark.skipif(not PTB.is_file(), reason=f"PTB test text not found at {PTB} (NEEDLE_DATA_DIR)")
def test_cli_trains_a_transformer_lm_on_a_ptb_slice(tmp_path, capsys):
    from needle.cli import main
    folder = tmp_path / "ptb"
    folder.mkdir()
    with open(PTB) as f:  # the first 120 lines (~2,500 tokens) of the real text
        (folder / "ptb.test.txt").write_text("".join(next(f) for _ in range(120)))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "ptb", "--seq-model", "transformer", "--data-dir",
                 str(folder), "--holdout", "400", "--epochs", "2", "--embedding-dim", "16",
                 "--hidden-dim", "32", "--batch-size", "8", "--bptt", "10", "--no-progress",
                 "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert all(np.isfinite(r["test_perplexity"]) for r in rows)
    assert main(["eval", "--checkpoint", str(out)]) == 0
    assert "perplexity" in capsys.readouterr().out
