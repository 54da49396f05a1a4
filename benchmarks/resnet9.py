"""Training speed and peak memory of the course's ResNet9 on CIFAR-shaped images
(3x32x32, batch 8 and 64): ``needle.models.ResNet9`` vs the same network in PyTorch
eager, started from the same weights.

A step is forward + softmax loss + backward + SGD (momentum 0.9, weight decay 0.001).
Speed is measured two ways, like ``mlp_resnet``: whole repeats interleaved, and the
frameworks taking turns step by step (1 thread). The images are random normal draws
of CIFAR-10's shape: a step's time does not depend on the pixel values, and nothing
needs downloading. Peak memory is measured at batch 64, each framework in a process of
its own: the rise of resident memory over what it held before the first step (its
imports and model excluded), read from Linux's VmHWM after resetting it.
"""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import _harness
import numpy as np
from torch_model import residual

BATCHES = (8, 64)
MEMORY_BATCH = 64
SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.001}
CLASSES = 10
MIB = _harness.MIB


def cifar_batches(batch: int, steps: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` batches of float32 NCHW images (N, 3, 32, 32) and int64 labels."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 3, 32, 32), dtype=np.float32),
             rng.integers(0, CLASSES, batch).astype(np.int64)) for _ in range(steps)]


# -- the two models ---------------------------------------------------------------------
def needle_model(seed: int = 0) -> Any:
    import needle.models as models

    np.random.seed(seed)  # needle's CPU backend draws its initial weights from NumPy
    model = models.ResNet9()
    model.train()
    return model


def torch_model(torch: Any, weights_from: Any | None = None) -> Any:
    """The same ResNet9 in PyTorch (padding k // 2, as needle's ``nn.Conv``); with
    ``weights_from`` (a needle ResNet9), its parameters copied over, converted from the
    course's layouts: conv (KH, KW, in, out) -> (out, in, KH, KW), linear (in, out) -> (out, in)."""
    nn = torch.nn

    def conv_bn(cin: int, cout: int, k: int, stride: int) -> Any:
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2), nn.BatchNorm2d(cout),
                             nn.ReLU())

    net = nn.Sequential(
        conv_bn(3, 16, 7, 4), conv_bn(16, 32, 3, 2),
        residual(torch, nn.Sequential(conv_bn(32, 32, 3, 1), conv_bn(32, 32, 3, 1))),
        conv_bn(32, 64, 3, 2), conv_bn(64, 128, 3, 2),
        residual(torch, nn.Sequential(conv_bn(128, 128, 3, 1), conv_bn(128, 128, 3, 1))),
        nn.Flatten(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, CLASSES))
    net.train()
    if weights_from is not None:
        ours, theirs = list(net.parameters()), weights_from.parameters()
        if len(ours) != len(theirs):
            raise ValueError(f"torch ResNet9 has {len(ours)} parameters, needle's {len(theirs)}")
        with torch.no_grad():
            for t, p in zip(ours, theirs):
                a = p.numpy()
                a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T if t.ndim == 2 else a
                a = np.ascontiguousarray(a).reshape(tuple(t.shape))
                t.copy_(torch.from_numpy(a))
    return net


# -- one training step each ---------------------------------------------------------------
def needle_step(ndl: Any, model: Any, data: list) -> Any:
    return _harness.train_step(model, ndl.nn.SoftmaxLoss(), ndl.optim.SGD(model.parameters(), **SGD),
                               _harness.needle_batches(ndl, data))


def torch_step(torch: Any, net: Any, data: list) -> Any:
    # dampening = momentum makes torch's velocity the course's average of gradients
    opt = torch.optim.SGD(net.parameters(), **SGD, dampening=SGD["momentum"])
    return _harness.train_step(net, torch.nn.functional.cross_entropy, opt,
                               _harness.torch_batches(torch, data))


# -- peak memory, one framework per process ----------------------------------------------
def memory_worker(framework: str, steps: int, batch: int) -> dict[str, Any]:
    """In the framework's own process: build, reset the high-water mark, train ``steps``
    steps; the step's peak is the high-water mark minus the resident size before it."""
    data = cifar_batches(batch, 2)
    if framework == "torch":
        import torch

        torch.set_num_threads(int(os.environ.get("NEEDLE_BENCH_THREADS", "1")))
        step = torch_step(torch, torch_model(torch), data)
    else:
        import needle as ndl

        step = needle_step(ndl, needle_model(), data)
    if not _harness.reset_high_water():
        return {"framework": framework, "skipped": "cannot reset VmHWM (/proc/self/clear_refs)"}
    before = _harness.rss_bytes()
    for i in range(steps):
        step(i)
    peak = _harness.high_water_bytes() or 0
    out = {"framework": framework, "batch": batch, "steps": steps,
           "rss_before_mib": round(before / MIB, 2),
           "after_mib": round(_harness.rss_bytes() / MIB, 2),
           "step_peak_mib": round((peak - before) / MIB, 2)}
    if framework == "needle":  # NumPy reports its buffers to tracemalloc: the exact peak
        tracemalloc.start()
        step(steps)
        out["traced_step_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / MIB, 2)
        tracemalloc.stop()
    return out


def run_memory_worker(framework: str, steps: int, batch: int) -> dict[str, Any]:
    return _harness.run_worker(__file__, framework, steps, batch)


# -- the benchmark --------------------------------------------------------------------------
def main(args: Any) -> None:
    # memory workers first, while this process is small (see memory.py's peak_bytes)
    frameworks = ("needle",) if args.no_torch else ("needle", "torch")
    mem_steps = 3 if args.quick else 10
    memory = {f: run_memory_worker(f, mem_steps, MEMORY_BATCH) for f in frameworks}

    import needle as ndl

    torch = _harness.import_torch(args.no_torch)
    _harness.print_machine_line(torch)
    report = _harness.Report("resnet9", args, torch)
    rows = []
    for batch in BATCHES:
        steps = 3 if args.quick else max(10, 512 // batch)
        data = cifar_batches(batch, steps)
        model = needle_model()
        step_fns = {"needle": needle_step(ndl, model, data)}
        if torch is not None:
            step_fns["torch"] = torch_step(torch, torch_model(torch, model), data)
        runs = _harness.compare(step_fns, steps, args.repeats, work=steps * batch)
        pair = ("needle", "torch")
        runs.record(report, {"batch": batch, "steps_per_repeat": steps, **SGD}, "images/s", [pair])
        rows.append([f"batch {batch}", runs.median("needle"), runs.median("torch"),
                     runs.ratio(*pair), runs.paired(*pair), runs.stepwise(*pair)])
    notes = ["ratios are speed ratios: above 1.0 needle trains faster than PyTorch",
             "paired: median of per-repeat ratios; by step: the frameworks take turns step by "
             "step (1 thread only)"]
    report.table(f"ResNet9 training (3x32x32, SGD), images/s (median of {args.repeats}, "
                 f"{_harness.bench_threads()} thread(s))",
                 ["config", "needle", "torch", "needle/torch", "paired", "by step"], rows, notes)
    torch_peak = memory.get("torch", {}).get("step_peak_mib")
    mem_rows = []
    for f, r in memory.items():
        ratio = _harness.ratio(r.get("step_peak_mib"), torch_peak)
        report.record({"framework": f, "batch": MEMORY_BATCH, "steps": mem_steps}, "MiB", {f: r},
                      {"peak/torch": ratio})
        mem_rows.append([f, r.get("rss_before_mib"), r.get("step_peak_mib"),
                         r.get("traced_step_peak_mib"), ratio])
    report.table(f"ResNet9 training step, peak memory above the resident size before it, MiB "
                 f"(batch {MEMORY_BATCH}, {mem_steps} steps)",
                 ["framework", "before", "step peak", "traced (NumPy)", "peak/torch"], mem_rows,
                 ["target: needle's step peak <= PyTorch's",
                  *(f"{f}: {r['skipped']}" for f, r in memory.items() if "skipped" in r)])
    report.finish()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(json.dumps(memory_worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
