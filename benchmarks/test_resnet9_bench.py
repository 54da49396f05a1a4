"""Correctness of the ResNet9 benchmark (never its speed): the PyTorch network is the
same function as needle's from the same weights, both steps train, the memory worker
reports a step's peak, and the launcher and hatch know the benchmark."""

from __future__ import annotations

from pathlib import Path

import needle as ndl
import numpy as np
import pytest
import resnet9
import run as launcher

HERE = Path(__file__).resolve().parent


def test_cifar_batches_have_cifar_shapes():
    data = resnet9.cifar_batches(4, 2)
    assert len(data) == 2
    x, y = data[0]
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32
    assert y.shape == (4,) and y.dtype == np.int64 and 0 <= y.min() and y.max() < 10
    assert not np.array_equal(data[0][0], data[1][0])


def test_needle_step_trains():
    data = resnet9.cifar_batches(8, 1)
    step = resnet9.needle_step(ndl, resnet9.needle_model(), data)
    losses = [float(step(0).numpy()) for _ in range(8)]  # one batch, again and again
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0]


def test_torch_network_is_needles_from_the_same_weights():
    torch = pytest.importorskip("torch")
    model = resnet9.needle_model()
    net = resnet9.torch_model(torch, model)
    x, y = resnet9.cifar_batches(8, 1)[0]
    loss = ndl.nn.SoftmaxLoss()(model(ndl.Tensor(x)), ndl.Tensor(y, dtype="int64",
                                                                 requires_grad=False))
    loss.backward()
    loss_t = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
    loss_t.backward()
    np.testing.assert_allclose(float(loss.numpy()), loss_t.item(), rtol=1e-4)
    for p, t in zip(model.parameters(), net.parameters()):
        g = t.grad.numpy()
        g = g.transpose(2, 3, 1, 0) if g.ndim == 4 else g.T if g.ndim == 2 else g
        np.testing.assert_allclose(p.grad.numpy().reshape(g.shape), g, rtol=2e-3, atol=2e-4)


def test_torch_network_refuses_weights_of_another_model():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="torch ResNet9 has 36 parameters, needle's 2"):
        resnet9.torch_model(torch, ndl.nn.Linear(3, 4))


def test_memory_worker_reports_a_step_peak():
    result = resnet9.run_memory_worker("needle", 1, 8)
    if "skipped" in result:
        pytest.skip(result["skipped"])
    assert result["framework"] == "needle" and result["batch"] == 8
    assert 0 < result["traced_step_peak_mib"] < 200
    assert result["step_peak_mib"] >= 0 and result["rss_before_mib"] > 0


def test_launcher_and_hatch_know_the_benchmark():
    assert "resnet9" in launcher.BENCHMARKS
    hatch = (HERE.parent / "hatch.toml").read_text()
    assert 'resnet9 = "python benchmarks/run.py resnet9 {args}"' in hatch
