"""Where a needle MLP-ResNet training step spends its time: host or device, and which calls.

``gpu_bench.py`` says how fast needle trains beside PyTorch; this says why. For one
model width it prints:

* the step time, then each phase (model, loss, backward, optimizer) with the device
  synchronized after it;
* the host functions that take the most time in 30 steps (cProfile, by own time): on
  a small model CuPy's per-call cost shows up here;
* with PyTorch installed and a cuda device, the kernels by device time
  (``torch.profiler`` records every CUDA kernel of the process, CuPy's too).

    python benchmarks/gpu_profile.py [--device cuda] [--hidden 1024] [--batch 1024]

On the cpu device it runs too (no kernel table): a check of this script.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def training_step(device_name: str, batch: int, hidden: int) -> tuple[Callable[..., Any], Any]:
    """A step function (one Adam step of the course's MLP-ResNet on fixed random data)
    and the device's synchronize."""
    import needle as ndl
    from needle import nn, optim
    from needle.models import MLPResNet

    dev = ndl.device(device_name)
    ndl.manual_seed(0)
    model = MLPResNet(784, hidden_dim=hidden, num_blocks=3, num_classes=10, device=dev)
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    loss_fn = nn.SoftmaxLoss()
    rs = np.random.RandomState(0)
    x = ndl.Tensor(rs.randn(batch, 784).astype(np.float32), device=dev, requires_grad=False)
    y = ndl.Tensor(rs.randint(0, 10, batch), device=dev, dtype="int64", requires_grad=False)
    sync = getattr(dev.backend, "synchronize", lambda: None)

    def step(phases: list[float] | None = None) -> None:
        """A training step; with ``phases``, append each phase's seconds (synchronized)."""
        marks = [time.perf_counter()]

        def mark() -> None:
            if phases is not None:
                sync()
                marks.append(time.perf_counter())

        opt.reset_grad()
        out = model(x)
        mark()
        loss = loss_fn(out, y)
        mark()
        loss.backward()
        mark()
        opt.step()
        mark()
        if phases is not None:
            phases.extend(np.diff(marks))

    return step, sync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    step, sync = training_step(args.device, args.batch, args.hidden)

    for _ in range(10):  # warm-up: kernel compilation, memory pool
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    per_step = (time.perf_counter() - start) / args.steps
    print(f"{args.device}, batch {args.batch}, hidden {args.hidden}: "
          f"{per_step * 1e3:.2f} ms per step, {args.batch / per_step:,.0f} examples/s")
    runs = []
    for _ in range(30):
        phases: list[float] = []
        step(phases)
        runs.append(phases)
    model, loss, backward, update = np.median(runs, axis=0) * 1e3
    print(f"phases (device synchronized after each), ms: model {model:.2f}, loss {loss:.2f}, "
          f"backward {backward:.2f}, optimizer {update:.2f}")

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(30):
        step()
    sync()
    profile.disable()
    print("\nhost time of 30 steps, by own time:")
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)

    if args.device != "cuda":
        return
    try:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile
    except ImportError:
        print("PyTorch is not installed: no kernel table")
        return
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            step()
        sync()
    print("device kernels of 10 steps:")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=20,
                                    max_name_column_width=60))


if __name__ == "__main__":
    main()
