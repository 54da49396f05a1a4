"""Correctness of benchmarks/lstm_lm.py (never its speed): PyTorch's copy of needle's LSTM
language model computes the same logits and trains the same way, and a quick run works
end to end through the launcher."""

from __future__ import annotations

from pathlib import Path

import _harness
import _lm
import lstm_lm as bench
import numpy as np
import pytest
import run as launcher
from _testing import quick_run

HERE = Path(__file__).resolve().parent
SMALL = {"vocab": 30, "embed": 8, "hidden": 16, "layers": 2}


def needle_step(ndl, lm, data):
    return _lm.needle_step(ndl, lm, data, *bench.OPTIMIZER)


def torch_step(torch, net, data):
    return _lm.torch_step(torch, net, data, *bench.OPTIMIZER)


def small_data(steps: int) -> list:
    return _lm.batches(steps, vocab=30, seq=5, batch=3)


def test_needle_step_trains():
    import needle as ndl

    data = small_data(1)
    step = needle_step(ndl, bench.needle_model(ndl, **SMALL), data)
    losses = [_harness.loss_value(step(0)) for _ in range(5)]  # the same batch again
    assert losses[-1] < losses[0] and all(np.isfinite(losses))


def test_torch_copy_computes_needles_logits():
    torch = pytest.importorskip("torch", reason="PyTorch is only in the bench environment")
    import needle as ndl

    lm = bench.needle_model(ndl, **SMALL)
    net = bench.torch_copy(torch, lm)
    x, _ = small_data(1)[0]
    ours = lm(ndl.Tensor(x, dtype="int64", requires_grad=False))[0].numpy()
    theirs = net(torch.from_numpy(x)).detach().numpy()
    assert ours.shape == theirs.shape == (15, 30)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_torch_copy_trains_like_needle():
    torch = pytest.importorskip("torch", reason="PyTorch is only in the bench environment")
    import needle as ndl

    data = small_data(3)
    steps = {"needle": needle_step(ndl, bench.needle_model(ndl, **SMALL), data),
             "torch": torch_step(torch, bench.torch_copy(
                 torch, bench.needle_model(ndl, **SMALL)), data)}
    losses = _harness.check_same_losses(steps, 3, rtol=1e-4)
    assert losses[0] != losses[1]  # the weights moved


def test_launcher_and_hatch_know_the_benchmark():
    assert "lstm_lm" in launcher.BENCHMARKS
    hatch = (HERE.parent / "hatch.toml").read_text()
    assert 'lstm_lm = "python benchmarks/run.py lstm_lm {args}"' in hatch


def test_quick_lstm_run_end_to_end():
    records, out = quick_run("lstm_lm")
    assert len(records) == 1 and records[0]["unit"] == "tokens/s"
    config = records[0]["config"]
    assert (config["vocab"], config["embedding"], config["hidden"]) == (10_000, 100, 100)
    assert (config["seq"], config["batch"]) == (20, 16)
    assert records[0]["results"]["needle"]["median"] > 0
    assert np.isfinite(records[0]["final_loss"]["needle"])
    assert "LSTM LM training, tokens/s" in out
