"""Correctness of benchmarks/transformer_lm.py (never its speed): its batches, the loss
check that both frameworks train the same network, PyTorch's copy of needle's model,
and a quick run end to end."""

from __future__ import annotations

from pathlib import Path

import _harness
import _lm
import numpy as np
import pytest
import transformer_lm as bench
from _testing import quick_run

HERE = Path(__file__).resolve().parent
SMALL = {"vocab": 30, "embed": 8, "hidden": 16, "layers": 2, "seq": 6}


def needle_step(ndl, lm, data):
    return _lm.needle_step(ndl, lm, data, *bench.OPTIMIZER)


def torch_step(torch, net, data):
    return _lm.torch_step(torch, net, data, *bench.OPTIMIZER)


def test_batches_are_next_token_pairs():
    data = _lm.batches(2, vocab=30, seq=6, batch=4)
    assert len(data) == 2
    (x, y), (x2, _) = data
    assert x.shape == (6, 4) and y.shape == (24,) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(y.reshape(6, 4)[:-1], x[1:])  # y is x one token on
    assert x.min() >= 0 and x.max() < 30 and not np.array_equal(x, x2)


def test_loss_check_passes_the_same_network_and_catches_another():
    import needle as ndl

    data = _lm.batches(3, vocab=30, seq=6, batch=4)
    same = {name: needle_step(ndl, bench.needle_model(ndl, **SMALL), data)
            for name in ("a", "b")}
    losses = _harness.check_same_losses(same, 3)
    assert len(losses) == 3 and losses[2] < losses[0]  # it trains
    other = bench.needle_model(ndl, **SMALL)
    other.linear.weight.data = other.linear.weight * 2.0
    steps = {"a": needle_step(ndl, bench.needle_model(ndl, **SMALL), data),
             "b": needle_step(ndl, other, data)}
    with pytest.raises(AssertionError, match="b's losses differ from a's"):
        _harness.check_same_losses(steps, 3)


def test_torch_copy_trains_like_needle():
    torch = pytest.importorskip("torch", reason="PyTorch is only in the bench environment")
    import needle as ndl

    data = _lm.batches(3, vocab=30, seq=6, batch=4)
    steps = {"needle": needle_step(ndl, bench.needle_model(ndl, **SMALL), data),
             "torch": torch_step(torch, bench.torch_copy(
                 torch, bench.needle_model(ndl, **SMALL)), data)}
    _harness.check_same_losses(steps, 3, rtol=1e-4)


def test_quick_transformer_run_end_to_end():
    records, out = quick_run("transformer_lm")
    assert len(records) == 1 and records[0]["unit"] == "tokens/s"
    assert records[0]["config"]["embedding"] == 256 and records[0]["config"]["vocab"] == 10_000
    assert records[0]["results"]["needle"]["median"] > 0
    assert np.isfinite(records[0]["final_loss"]["needle"])
    assert "Transformer LM training, tokens/s" in out
