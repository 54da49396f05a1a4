"""needle.models: the course's parameter counts and shapes, and that a training step learns."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle import nn, optim
from needle.models import LanguageModel, MLPResNet, ResidualBlock, ResNet9


def n_params(model: nn.Module) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters())


def test_mlp_resnet_has_the_course_parameter_count(device):
    np.random.seed(0)
    assert n_params(MLPResNet(784, device=device)) == 110_860
    # Linear 64->100, 3 blocks of (100->50, BN 50, 50->100, BN 100), Linear 100->10
    block = 100 * 50 + 50 + 2 * 50 + 50 * 100 + 100 + 2 * 100
    assert n_params(MLPResNet(64, device=device)) == 64 * 100 + 100 + 3 * block + 100 * 10 + 10


def test_residual_block_structure_and_output(device):
    np.random.seed(0)
    block = ResidualBlock(8, 4, drop_prob=0.0, device=device)
    inner = block.modules[0].fn.modules
    assert [type(m).__name__ for m in inner] == [
        "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d"]
    x = ndl.Tensor(np.random.randn(5, 8), device=device)
    out = block(x).numpy()
    inner_out = nn.Sequential(*inner)(x).numpy()
    np.testing.assert_allclose(out, np.maximum(inner_out + x.numpy(), 0), rtol=1e-5, atol=1e-6)


def test_resnet9_maps_images_to_ten_logits(device):
    np.random.seed(0)
    model = ResNet9(device=device)
    x = ndl.Tensor(np.random.rand(2, 3, 32, 32), device=device, dtype="float32")
    out = model(x)
    assert out.shape == (2, 10) and out.dtype == np.float32
    assert np.all(np.isfinite(out.numpy()))


@pytest.mark.parametrize("seq_model, layers", [("rnn", 1), ("lstm", 2)])
def test_language_model_shapes(device, seq_model, layers):
    np.random.seed(0)
    vocab, seq_len, batch, hidden = 13, 5, 3, 6
    model = LanguageModel(4, vocab, hidden, num_layers=layers, seq_model=seq_model, device=device)
    x = ndl.Tensor(np.random.randint(0, vocab, (seq_len, batch)), device=device, dtype="int64",
                   requires_grad=False)
    logits, h = model(x)
    assert logits.shape == (seq_len * batch, vocab)
    states = h if seq_model == "lstm" else (h,)
    assert len(states) == (2 if seq_model == "lstm" else 1)
    assert all(s.shape == (layers, batch, hidden) for s in states)
    logits2, _ = model(x, h)  # the state carries over
    assert not np.allclose(logits2.numpy(), logits.numpy())


def test_language_model_rejects_unknown_sequence_model():
    with pytest.raises(ndl.NeedleError, match="seq_model must be 'rnn', 'lstm' or 'transformer'"):
        LanguageModel(4, 10, 6, seq_model="gru")


def _loss(model, x, y):
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    return nn.SoftmaxLoss()(logits, y)


@pytest.mark.parametrize("kind", ["mlp-resnet", "lm"])
def test_one_training_step_reduces_the_loss(device, kind):
    np.random.seed(0)
    if kind == "mlp-resnet":
        model = MLPResNet(20, hidden_dim=16, drop_prob=0.0, device=device)
        x = ndl.Tensor(np.random.rand(32, 20), device=device, requires_grad=False)
        y = ndl.Tensor(np.random.randint(0, 10, 32), device=device, dtype="int64",
                       requires_grad=False)
    else:
        model = LanguageModel(8, 11, 12, seq_model="lstm", device=device)
        ids = np.random.randint(0, 11, (7, 4))
        x = ndl.Tensor(ids[:-1], device=device, dtype="int64", requires_grad=False)
        y = ndl.Tensor(ids[1:].reshape(-1), device=device, dtype="int64", requires_grad=False)
    opt = optim.SGD(model.parameters(), lr=0.1)
    before = _loss(model, x, y)
    before.backward()
    opt.step()
    after = _loss(model, x, y)
    assert float(after.numpy()) < float(before.numpy()) - 1e-4
