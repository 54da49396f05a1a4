"""Data-parallel scaling: MLP-ResNet training examples/s on 1 and 2 MPI ranks, and a cost
model of ring all-reduce that says what a cluster would reach.

Each configuration is a fresh ``mpiexec -n N`` job (1 thread per rank, from
``run.py``), alternating 1 and 2 ranks in rounds so a slow spell of a shared machine
hits both. Every rank trains ``needle.models.MLPResNet`` (784 → 100, 110,860
parameters) with ``DistributedOptimizer(Adam)`` on its own half of the MNIST test
images, batch B *per rank*; the reported rate counts every rank's examples
(N·B per step). The 2-rank job also times ``Allreduce`` alone over message sizes
(the fastest of many: on a shared machine the median mostly measures waiting for a
descheduled partner), and the ring model fitted to those times feeds the cost model.

Ring all-reduce of ``n`` bytes over ``p`` ranks sends ``2(p-1)`` messages of
``n/p`` bytes from every rank (reduce-scatter, then all-gather), so
``T(p, n) = 2(p-1)·α + 2·(p-1)/p · n/bandwidth``: the bandwidth term tends to
``2n/bandwidth`` however many ranks there are, the latency term grows with p.
needle reduces after the backward pass (no overlap), so a step takes
``compute(B) + T(p, n)`` and the efficiency is ``compute / (compute + T)``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _harness
import _mnist
import needle_model
import numpy as np

RANKS = (1, 2)
BATCHES = (128, 1024)
TARGET = 1.7  # issue 16: 2 ranks at batch 1024 per rank
#: The cluster the model extrapolates to: 16 nodes, one rank each, on 100 Gb/s
#: InfiniBand (EDR): ~2 µs MPI latency and ~11 GB/s achieved bandwidth per link.
CLUSTER = {"nodes": 16, "latency_s": 2e-6, "bandwidth": 11e9}
SIZES = (8, 1024, 65_536, 1_048_576, 4_194_304)  # bytes, beside the model's own gradient
HERE = Path(__file__).resolve()


def ring_allreduce_seconds(p: int, nbytes: float, latency_s: float, bandwidth: float) -> float:
    """``2(p-1)·α + 2(p-1)/p · n/bandwidth`` (0 for one rank)."""
    if p <= 1:
        return 0.0
    return 2 * (p - 1) * latency_s + 2 * (p - 1) / p * nbytes / bandwidth


def fit_latency_bandwidth(times: dict[int, float], p: int = 2) -> tuple[float, float]:
    """(α seconds, bytes/s) from measured all-reduce times: least squares on the ring model
    in *relative* error, so the 8-byte message (latency) weighs as much as the 4 MB one."""
    n = np.array(sorted(times), float)
    t = np.array([times[int(k)] for k in n])
    design = np.stack([np.full_like(n, 2 * (p - 1)), 2 * (p - 1) / p * n], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design / t[:, None], np.ones_like(t), rcond=None)
    return max(float(alpha), 0.0), (1.0 / beta if beta > 0 else float("inf"))


def predict(compute_s: float, batch: int, nbytes: float, latency_s: float, bandwidth: float,
            ranks: list[int]) -> list[dict[str, float]]:
    """Per rank count: all-reduce time, step time, examples/s and efficiency."""
    rows = []
    for p in ranks:
        comm = ring_allreduce_seconds(p, nbytes, latency_s, bandwidth)
        step = compute_s + comm
        rows.append({"ranks": p, "allreduce_s": comm, "step_s": step,
                     "examples_per_s": p * batch / step, "efficiency": compute_s / step})
    return rows


def gradient_bytes(model: Any) -> int:
    """What ``DistributedOptimizer`` sends a step: every float32 gradient and a flag each."""
    params = model.parameters()
    return 4 * (sum(int(np.prod(p.shape)) for p in params) + len(params))


# -- one rank of a job ----------------------------------------------------------------
def worker(batch: int, steps: int, repeats: int, comm_iters: int) -> None:
    import needle as ndl
    import needle.distributed as dist

    world = dist.init()
    x, y = _mnist.load_test_set()
    mine = _mnist.batches(x[world.rank::world.size], y[world.rank::world.size], batch, steps)
    np.random.seed(0)
    model, _ = needle_model.build()
    model.train()
    dist.broadcast_parameters(model)
    opt = dist.DistributedOptimizer(ndl.optim.Adam(model.parameters(), lr=0.001,
                                                   weight_decay=0.001))
    loss_fn = ndl.nn.SoftmaxLoss()
    tensors = [(ndl.Tensor(a), ndl.Tensor(b, dtype=b.dtype)) for a, b in mine]
    averaging = [0.0]
    average = opt.average_gradients

    def timed_average() -> None:
        start = time.perf_counter()
        average()
        averaging[0] += time.perf_counter() - start

    object.__setattr__(opt, "average_gradients", timed_average)

    def run() -> float:
        start = time.perf_counter()
        for xb, yb in tensors:
            opt.reset_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        dist.barrier()
        return time.perf_counter() - start

    run()  # warm-up
    rates, comm, cpu = [], [], []
    for _ in range(repeats):
        averaging[0] = 0.0
        dist.barrier()
        c0 = time.process_time()
        seconds = run()
        cpu.append(time.process_time() - c0)
        rates.append(world.size * batch * steps / seconds)
        comm.append(averaging[0] / steps)
    allreduce = {}
    if world.size > 1:
        for nbytes in sorted({*SIZES, gradient_bytes(model)}):
            buf = np.ones(nbytes // 4, np.float32)
            samples = []
            for _ in range(comm_iters):
                world.barrier()
                start = time.perf_counter()
                world.allreduce(buf, "sum")
                samples.append(time.perf_counter() - start)
            allreduce[nbytes] = min(samples)  # the cost itself; waits for a busy partner are not
    if world.rank == 0:
        print(json.dumps({"ranks": world.size, "batch": batch, "rates": rates,
                          "averaging_s": comm, "cpu_s": cpu, "allreduce_s": allreduce}),
              flush=True)


# -- the benchmark: launch the jobs, report, extrapolate -------------------------------
def mpiexec() -> str | None:
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def unavailable() -> str | None:
    if importlib.util.find_spec("mpi4py") is None or mpiexec() is None:
        return "mpi4py or mpiexec is absent (pip install 'needle-nn[mpi]')"
    if not (_mnist.data_dir() / "mnist" / _mnist.IMAGES).is_file():
        return f"no MNIST test images in {_mnist.data_dir() / 'mnist'} (NEEDLE_DATA_DIR)"
    return needle_model.unavailable_reason()


def launch(ranks: int, batch: int, steps: int, repeats: int, comm_iters: int) -> dict[str, Any]:
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, str(HERE), "--worker", "--batch",
           str(batch), "--steps", str(steps), "--repeats", str(repeats), "--comm-iters",
           str(comm_iters)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def main(args: Any) -> None:
    _harness.print_machine_line()
    reason = unavailable()
    if reason is not None:
        print(f"# scaling skipped: {reason}", flush=True)
        return
    report = _harness.Report("scaling", args, None)
    rounds, repeats = (1, 3) if args.quick else (3, max(3, args.repeats // 3))
    steps = {128: 40, 1024: 8} if args.quick else {128: 120, 1024: 24}
    comm_iters = 20 if args.quick else 100
    measured: dict[int, dict[int, dict[str, list[float]]]] = {}
    allreduce: dict[int, list[float]] = {}
    for batch in BATCHES:
        runs = measured.setdefault(batch, {n: {"rates": [], "averaging_s": [], "cpu_s": []}
                                           for n in RANKS})
        for _ in range(rounds):
            for n in RANKS:
                out = launch(n, batch, steps[batch], repeats, comm_iters if batch == BATCHES[0]
                             else 3)
                for key in runs[n]:
                    runs[n][key] += out[key]
                for nbytes, seconds in out["allreduce_s"].items():
                    if batch == BATCHES[0]:
                        allreduce.setdefault(int(nbytes), []).append(seconds)
    rows, results_by_batch = [], {}
    for batch in BATCHES:
        res = {f"{n}_ranks": _harness.summarize(measured[batch][n]["rates"]) for n in RANKS}
        speedup = _harness.ratio(res["2_ranks"]["median"], res["1_ranks"]["median"])
        comm = statistics.median(measured[batch][2]["averaging_s"])
        report.record({"model": "mlp-resnet", "optimizer": "adam", "batch_per_rank": batch},
                      "examples/s", res, {"2_over_1": speedup}, averaging_s_per_step=comm,
                      load=os.getloadavg())
        results_by_batch[batch] = (res, speedup, comm)
        rows.append([batch, res["1_ranks"]["median"], res["2_ranks"]["median"], speedup,
                     comm * 1e3, (batch / res["1_ranks"]["median"]) * 1e3])
    load = "/".join(f"{v:.1f}" for v in os.getloadavg())
    report.table("MLP-ResNet, Adam, 1 thread per rank (examples/s of all ranks together)",
                 ["batch/rank", "1 rank", "2 ranks", "speed-up", "reduce+wait ms", "step ms (1)"],
                 rows, [f"target: speed-up >= {TARGET} at batch 1024 per rank; load {load} "
                        f"(2 ranks need both cores: other work on the machine lowers it)"])
    times = {n: statistics.median(v) for n, v in allreduce.items()}
    alpha, bandwidth = fit_latency_bandwidth(times)
    report.record({"collective": "Allreduce", "ranks": 2}, "seconds",
                  {str(n): {"median": t} for n, t in times.items()}, {},
                  latency_s=alpha, bandwidth_bytes_per_s=bandwidth)
    report.table("Allreduce on 2 ranks of this machine (float32, MPICH shared memory)",
                 ["bytes", "fastest µs", "model µs"],
                 [[n, t * 1e6, ring_allreduce_seconds(2, n, alpha, bandwidth) * 1e6]
                  for n, t in sorted(times.items())],
                 [f"fit: latency α = {alpha * 1e6:.1f} µs, bandwidth {bandwidth / 1e9:.2f} GB/s"])
    np.random.seed(0)
    nbytes = gradient_bytes(needle_model.build()[0])
    for batch in BATCHES:
        res = results_by_batch[batch][0]
        compute = batch / res["1_ranks"]["median"]
        here = predict(compute, batch, nbytes, alpha, bandwidth, [2])[0]
        cluster = predict(compute, batch, nbytes, CLUSTER["latency_s"], CLUSTER["bandwidth"],
                          [1, 2, 4, 8, CLUSTER["nodes"]])
        report.record({"model": "ring all-reduce", "batch_per_rank": batch,
                       "gradient_bytes": nbytes, "cluster": CLUSTER}, "predicted",
                      {"this_machine_2_ranks": here, "cluster": cluster}, {})
        report.table(
            f"Cost model, batch {batch} per rank: compute {compute * 1e3:.1f} ms/step (1 rank "
            f"measured), {nbytes:,} gradient bytes/step",
            ["ranks", "allreduce ms", "step ms", "examples/s", "efficiency"],
            [[r["ranks"], r["allreduce_s"] * 1e3, r["step_s"] * 1e3, r["examples_per_s"],
              r["efficiency"]] for r in cluster],
            [f"cluster: 1 rank per node, α {CLUSTER['latency_s'] * 1e6:g} µs, "
             f"{CLUSTER['bandwidth'] / 1e9:g} GB/s links (100 Gb/s InfiniBand); this machine's "
             f"fit predicts {here['examples_per_s']:,.0f} examples/s on 2 ranks "
             f"({here['efficiency']:.0%} efficiency) if the ranks had a core each"])
    report.finish()


def _worker_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scaling.py --worker")
    p.add_argument("--worker", action="store_true", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--repeats", type=int, required=True)
    p.add_argument("--comm-iters", type=int, default=20)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = _worker_args(sys.argv[1:])
    worker(a.batch, a.steps, a.repeats, a.comm_iters)
