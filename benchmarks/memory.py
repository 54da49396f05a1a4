"""Resident memory while training MLP-ResNet (Adam, batch 128): needle vs PyTorch
vs the hand-written NumPy network.

Each framework trains in a process of its own, so each peak (``ru_maxrss``) is its
own and no framework's imports or caches count against another. The worker
samples resident memory (psutil, else /proc/self/statm) every 100 steps: a leak
shows as growth between step 100 (after warm-up) and the last step. Each step
converts its batch from NumPy, as a training loop over a data set does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import _harness
from _harness import MIB, high_water_bytes, peak_bytes, rss_bytes

FRAMEWORKS = ("needle", "torch", "numpy")
EVERY = 100


def trainer(framework: str, batch: int) -> Any:
    """A function ``step(x, y)`` training the framework's MLP-ResNet on one NumPy batch."""
    if framework == "numpy":
        import numpy_mlp

        model = numpy_mlp.NumpyMLPResNet.create(seed=0)
        opt = numpy_mlp.NumpyAdam(model.params, lr=0.001, weight_decay=0.001)

        def step(x, y):
            opt.step(model.loss_and_grads(x, y)[1])
        return step
    if framework == "torch":
        import torch
        import torch_model

        torch.set_num_threads(int(os.environ.get("NEEDLE_BENCH_THREADS", "1")))
        net = torch_model.build(torch)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=0.001, weight_decay=0.001)

        def step(x, y):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
            opt.step()
        return step
    import needle as ndl
    import needle_model
    import numpy as np

    np.random.seed(0)
    model, _ = needle_model.build()
    model.train()
    loss_fn = needle_model.submodule("nn").SoftmaxLoss()
    opt = needle_model.submodule("optim").Adam(model.parameters(), lr=0.001, weight_decay=0.001)

    def step(x, y):
        opt.reset_grad()
        loss_fn(model(ndl.Tensor(x, requires_grad=False)),
                ndl.Tensor(y, dtype=y.dtype, requires_grad=False)).backward()
        opt.step()
    return step


def worker(framework: str, steps: int, batch: int) -> dict[str, Any]:
    """Runs in the framework's own process: train ``steps`` steps, sampling memory."""
    import _mnist

    x, y = _mnist.load_test_set()
    baseline = rss_bytes()  # before the framework is imported: its own cost counts
    if framework == "needle":
        import needle_model

        missing = needle_model.unavailable_reason()
        if missing:
            return {"framework": framework, "skipped": missing}
    if framework == "torch" and importlib.util.find_spec("torch") is None:
        return {"framework": framework, "skipped": "PyTorch is not installed"}
    step = trainer(framework, batch)
    data = _mnist.batches(x, y, batch, steps)
    samples = []
    for i, (xb, yb) in enumerate(data, start=1):
        step(xb, yb)
        if i % EVERY == 0 or i == steps:
            samples.append([i, round(rss_bytes() / MIB, 2)])
    first = next(mib for s, mib in samples if s >= EVERY)
    hwm = high_water_bytes()
    return {"framework": framework, "steps": steps, "batch": batch,
            "rss_before_framework_mib": round(baseline / MIB, 2), "samples_mib": samples,
            "growth_mib": round(samples[-1][1] - first, 2),
            # ru_maxrss is updated lazily: never report a peak below a sample we saw
            "peak_mib": max(round(peak_bytes() / MIB, 2), max(mib for _, mib in samples)),
            "vmhwm_mib": None if hwm is None else round(hwm / MIB, 2)}


def main(args: Any) -> None:
    steps = 300 if args.quick else 1000
    batch = 128
    # Workers first, while this process holds only the standard library (see peak_bytes).
    skip = {"torch"} if args.no_torch else set()
    runs = {f: _harness.run_worker(__file__, f, steps, batch) for f in FRAMEWORKS if f not in skip}
    skipped = {f: r["skipped"] for f, r in runs.items() if "skipped" in r}
    runs = {f: r for f, r in runs.items() if "skipped" not in r}

    torch = _harness.import_torch(args.no_torch)
    _harness.print_machine_line(torch)
    report = _harness.Report("memory", args, torch)
    torch_peak = runs["torch"]["peak_mib"] if "torch" in runs else None
    rows = []
    for f, r in runs.items():
        ratios = {"peak/torch": _harness.ratio(r["peak_mib"], torch_peak)}
        report.record({"framework": f, "steps": steps, "batch": batch, "optimizer": "adam"}, "MiB",
                      {f: r}, ratios)
        rows.append([f, r["rss_before_framework_mib"], r["samples_mib"][0][1],
                     r["samples_mib"][-1][1], r["growth_mib"], r["peak_mib"], ratios["peak/torch"]])
    notes = [f"growth: resident memory at step {steps} minus step {EVERY} "
             f"(target for needle: < 1 MiB); peak = ru_maxrss (or the highest sample); "
             f"needle's peak/torch target: <= 0.5"]
    notes += [f"{f} left out: {why}" for f, why in skipped.items()]
    report.table(f"Resident memory, MiB ({steps} steps of MLP-ResNet, Adam, batch {batch}, "
                 f"{_harness.bench_threads()} thread(s))",
                 ["framework", "before import", f"step {EVERY}", f"step {steps}", "growth", "peak",
                  "peak/torch"], rows, notes)
    report.finish()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(json.dumps(worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
