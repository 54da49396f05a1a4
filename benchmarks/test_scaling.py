"""Correctness of benchmarks/scaling.py (never its speed): the ring all-reduce cost model,
its fit, and one tiny 2-rank worker job under mpiexec."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import scaling


def test_ring_allreduce_cost_model():
    assert scaling.ring_allreduce_seconds(1, 1e6, 1e-6, 1e9) == 0.0
    # p = 2: 2 messages' latency and the whole buffer once: 2 us + 1 ms
    assert scaling.ring_allreduce_seconds(2, 1e6, 1e-6, 1e9) == pytest.approx(2e-6 + 1e-3)
    # p = 16: 30 latencies, 2*15/16 of the buffer
    assert scaling.ring_allreduce_seconds(16, 1e6, 1e-6, 1e9) == pytest.approx(30e-6 + 1.875e-3)


def test_fit_recovers_latency_and_bandwidth():
    times = {n: scaling.ring_allreduce_seconds(2, n, 5e-6, 2e9) for n in scaling.SIZES}
    alpha, bandwidth = scaling.fit_latency_bandwidth(times)
    assert alpha == pytest.approx(5e-6, rel=1e-6) and bandwidth == pytest.approx(2e9, rel=1e-6)


def test_prediction_counts_every_rank_and_charges_the_reduction():
    rows = scaling.predict(0.01, 128, 4e5, 2e-6, 1e10, [1, 4])
    assert rows[0]["examples_per_s"] == pytest.approx(12_800) and rows[0]["efficiency"] == 1.0
    comm = scaling.ring_allreduce_seconds(4, 4e5, 2e-6, 1e10)
    assert rows[1]["step_s"] == pytest.approx(0.01 + comm)
    assert rows[1]["examples_per_s"] == pytest.approx(4 * 128 / (0.01 + comm))


@pytest.mark.skipif(scaling.unavailable() is not None, reason=str(scaling.unavailable()))
def test_a_tiny_two_rank_job_reports_rates_and_allreduce_times():
    env = {**os.environ, "NEEDLE_BENCH_THREADS": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    cmd = [scaling.mpiexec(), "-n", "2", sys.executable, str(scaling.HERE), "--worker",
           "--batch", "32", "--steps", "2", "--repeats", "2", "--comm-iters", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["ranks"] == 2 and out["batch"] == 32 and len(out["rates"]) == 2
    assert all(r > 0 for r in out["rates"])
    assert {int(n) for n in out["allreduce_s"]} >= set(scaling.SIZES)
    assert 4 * (110_860 + 28) in {int(n) for n in out["allreduce_s"]}  # the model's gradient
