"""needle on cuda beside PyTorch on the same GPU: MLP-ResNet training and a big matmul.

Two numbers, each side by side with PyTorch (eager, float32, TF32 off on both:
CuPy leaves it off unless CUPY_TF32=1, PyTorch since 1.12):

* **MLP-ResNet training examples/s** at batch 1024: the course's model (784 → 100,
  3 residual blocks, 10 classes; and a 1024-wide variant that is less bound by
  Python overhead), Adam, softmax loss, synthetic data already on the GPU.
* **4096×4096 matmul forward+backward TFLOP/s**: C = A @ B, then dA and dB from a
  given dC: three products of 2·n³ flops.

Kernels run asynchronously, so each timing synchronizes the device before reading
the clock. ``--dry-run`` runs the same code on the cpu device with tiny sizes
(PyTorch on its CPU if installed): a check of this script, not a benchmark.

    python benchmarks/gpu_bench.py [--json results.json] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch_model  # benchmarks/: the same PyTorch MLP-ResNet the CPU benchmarks use

Timing = dict[str, Any]


def timed(step: Callable[[], Any], sync: Callable[[], None], iters: int,
          warmup: int) -> float:
    """Seconds per call of ``step``, after ``warmup`` calls, device synchronized."""
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    return (time.perf_counter() - start) / iters


# -- needle ------------------------------------------------------------------------------------


def needle_sync(device_name: str) -> Callable[[], None]:
    import needle as ndl

    backend = ndl.device(device_name).backend
    return getattr(backend, "synchronize", lambda: None)


def needle_training(device_name: str, batch: int, hidden: int, iters: int,
                    warmup: int) -> Timing:
    import needle as ndl
    from needle import nn, optim
    from needle.models import MLPResNet

    dev = ndl.device(device_name)
    ndl.manual_seed(0)
    model = MLPResNet(784, hidden_dim=hidden, num_blocks=3, num_classes=10, device=dev)
    model.train()
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    loss_fn = nn.SoftmaxLoss()
    rs = np.random.RandomState(0)
    batches = [(ndl.Tensor(rs.randn(batch, 784).astype(np.float32), device=dev,
                           requires_grad=False),
                ndl.Tensor(rs.randint(0, 10, batch), device=dev, dtype="int64",
                           requires_grad=False)) for _ in range(4)]
    losses: list[Any] = []

    def step() -> None:
        x, y = batches[len(losses) % len(batches)]
        opt.reset_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach())  # read after timing: no sync inside the loop

    sec = timed(step, needle_sync(device_name), iters, warmup)
    values = [float(v.numpy()) for v in losses]
    return {"examples_per_s": batch / sec, "ms_per_step": sec * 1e3,
            "first_loss": values[0], "last_loss": values[-1],
            "finite": bool(np.all(np.isfinite(values)))}


def needle_matmul(device_name: str, n: int, iters: int, warmup: int) -> Timing:
    import needle as ndl

    dev = ndl.device(device_name)
    ndl.manual_seed(0)
    a = ndl.Tensor(dev.randn(n, n), device=dev)
    b = ndl.Tensor(dev.randn(n, n), device=dev)
    g = ndl.Tensor(dev.randn(n, n), device=dev, requires_grad=False)

    def step() -> None:
        a.grad = b.grad = None
        (a @ b).backward(g)

    sec = timed(step, needle_sync(device_name), iters, warmup)
    return {"tflops": 6 * n**3 / sec / 1e12, "ms_per_step": sec * 1e3}


# -- PyTorch -------------------------------------------------------------------------------------


def torch_device(torch: Any, device_name: str) -> Any:
    return torch.device("cuda" if device_name == "cuda" else "cpu")


def torch_sync(torch: Any, device_name: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device_name == "cuda" else (lambda: None)


def torch_training(torch: Any, device_name: str, batch: int, hidden: int, iters: int,
                   warmup: int) -> Timing:
    nn = torch.nn
    dev = torch_device(torch, device_name)
    torch.manual_seed(0)
    model = torch_model.build(torch, hidden=hidden).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    rs = np.random.RandomState(0)
    batches = [(torch.from_numpy(rs.randn(batch, 784).astype(np.float32)).to(dev),
                torch.from_numpy(rs.randint(0, 10, batch)).to(dev)) for _ in range(4)]
    losses: list[Any] = []

    def step() -> None:
        x, y = batches[len(losses) % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach())

    sec = timed(step, torch_sync(torch, device_name), iters, warmup)
    values = [float(v) for v in losses]
    return {"examples_per_s": batch / sec, "ms_per_step": sec * 1e3,
            "first_loss": values[0], "last_loss": values[-1],
            "finite": bool(np.all(np.isfinite(values)))}


def torch_matmul(torch: Any, device_name: str, n: int, iters: int, warmup: int) -> Timing:
    dev = torch_device(torch, device_name)
    torch.manual_seed(0)
    a = torch.randn(n, n, device=dev, requires_grad=True)
    b = torch.randn(n, n, device=dev, requires_grad=True)
    g = torch.randn(n, n, device=dev)

    def step() -> None:
        a.grad = b.grad = None
        (a @ b).backward(g)

    sec = timed(step, torch_sync(torch, device_name), iters, warmup)
    return {"tflops": 6 * n**3 / sec / 1e12, "ms_per_step": sec * 1e3}


# -- driver ----------------------------------------------------------------------------------------


def environment(device_name: str, torch: Any) -> dict[str, str]:
    import needle as ndl

    env = {"python": platform.python_version(), "numpy": np.__version__,
           "needle": ndl.__version__, "device": device_name,
           "torch": getattr(torch, "__version__", "not installed")}
    if device_name == "cuda":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        env["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        env["cupy"] = cupy.__version__
        env["cuda_runtime"] = str(cupy.cuda.runtime.runtimeGetVersion())
        env["driver"] = str(cupy.cuda.runtime.driverGetVersion())
    return env


def run(dry_run: bool) -> dict[str, Any]:
    import needle as ndl

    device_name = "cpu" if dry_run else "cuda"
    if not dry_run and not ndl.cuda().enabled():
        info = {i.name: i for i in ndl.backends()}.get("cuda")
        raise SystemExit(f"cuda is not usable here: {info.reason if info else 'not installed'}")
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and not dry_run:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    batch, hiddens, n = (32, (16,), 64) if dry_run else (1024, (100, 1024), 4096)
    train_iters, mm_iters, warmup = (3, 2, 1) if dry_run else (50, 20, 5)
    results: dict[str, Any] = {"env": environment(device_name, torch), "rows": []}
    for hidden in hiddens:
        row = {"name": f"MLPResNet train b={batch} h={hidden}", "unit": "examples/s",
               "needle": needle_training(device_name, batch, hidden, train_iters, warmup)}
        if torch is not None:
            row["torch"] = torch_training(torch, device_name, batch, hidden, train_iters, warmup)
        results["rows"].append(row)
    row = {"name": f"matmul {n}x{n} fwd+bwd fp32", "unit": "TFLOP/s",
           "needle": needle_matmul(device_name, n, mm_iters, warmup)}
    if torch is not None:
        row["torch"] = torch_matmul(torch, device_name, n, mm_iters, warmup)
    results["rows"].append(row)
    return results


def summary(results: dict[str, Any]) -> str:
    env = results["env"]
    head = ", ".join(f"{k} {v}" for k, v in env.items())
    lines = [f"needle GPU benchmark ({head})",
             f"{'benchmark':<34} {'needle':>14} {'torch':>14} {'needle/torch':>13}"]
    for row in results["rows"]:
        key = "examples_per_s" if row["unit"] == "examples/s" else "tflops"
        ours = row["needle"][key]
        theirs = row.get("torch", {}).get(key)
        fmt = "{:>9.0f} ex/s" if key == "examples_per_s" else "{:>6.2f} TFLOP/s"
        lines.append(f"{row['name']:<34} {fmt.format(ours):>14} "
                     f"{fmt.format(theirs) if theirs else 'n/a':>14} "
                     f"{ours / theirs if theirs else float('nan'):>13.2f}")
        for side in ("needle", "torch"):
            t = row.get(side)
            if t and "first_loss" in t:
                lines.append(f"    {side}: loss {t['first_loss']:.3f} -> {t['last_loss']:.3f}"
                             f" ({t['ms_per_step']:.2f} ms/step, finite: {t['finite']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes on the cpu device: checks the script, measures nothing")
    args = parser.parse_args(argv)
    results = run(args.dry_run)
    print(summary(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    ok = all(row[side].get("finite", True) for row in results["rows"]
             for side in ("needle", "torch") if side in row)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
