"""GFLOP/s of one Linear layer's forward + backward: needle vs PyTorch vs raw NumPy.

y = x W + b, then the gradients of x, W and b for a given dL/dy: three matrix
products of 2*B*I*O flops each (the bias work is not counted). NumPy's three
``@`` calls are what the hardware's BLAS can do; a framework above that pays for
copies, transposes or materialised broadcasts it did not need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import _harness
import needle_model
import numpy as np

# (batch, in_features, out_features)
SHAPES = ((1024, 4096, 4096), (128, 784, 100))
FRAMEWORKS = ("needle", "torch", "numpy")


def iterations_for(shape: tuple[int, int, int], quick: bool) -> int:
    """About 0.1-1 s of work per repeat at tens of GFLOP/s."""
    flops = 6 * shape[0] * shape[1] * shape[2]
    return max(1, int((0.5e9 if quick else 2e9) // flops))


Step = Callable[[], tuple]


def numpy_step(x: np.ndarray, w: np.ndarray, b: np.ndarray, g: np.ndarray) -> Step:
    def step() -> tuple:
        y = x @ w
        y += b
        return y, g @ w.T, x.T @ g, g.sum(axis=0)

    return step


def needle_step(x: np.ndarray, w: np.ndarray, b: np.ndarray, g: np.ndarray) -> Step:
    import needle as ndl

    nn = needle_model.submodule("nn")
    layer = nn.Linear(w.shape[0], w.shape[1])
    layer.weight.data = ndl.Tensor(w)
    layer.bias.data = ndl.Tensor(b.reshape(1, -1))
    xt = ndl.Tensor(x)
    gt = ndl.Tensor(g, requires_grad=False)

    def step() -> tuple:
        xt.grad = layer.weight.grad = layer.bias.grad = None
        y = layer(xt)
        y.backward(gt)
        return y, xt.grad, layer.weight.grad, layer.bias.grad

    return step


def torch_step(torch: Any, x: np.ndarray, w: np.ndarray, b: np.ndarray, g: np.ndarray) -> Step:
    layer = torch.nn.Linear(w.shape[0], w.shape[1])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w.T))
        layer.bias.copy_(torch.from_numpy(b))
    xt = torch.from_numpy(x).requires_grad_(True)
    gt = torch.from_numpy(g)

    def step() -> tuple:
        xt.grad = layer.weight.grad = layer.bias.grad = None
        y = layer(xt)
        y.backward(gt)
        return y, xt.grad, layer.weight.grad.T, layer.bias.grad

    return step


def check_same(steps: dict[str, Step]) -> None:
    """Every framework must compute the same four arrays (same work, right answer)."""
    names = ("y", "dx", "dW", "db")
    ref = steps["numpy"]()
    for fw, step in steps.items():
        for name, a, r in zip(names, step(), ref):
            a = a if isinstance(a, np.ndarray) else a.detach().numpy()  # torch or needle
            a = a.reshape(r.shape) if a.size == r.size else a
            scale = float(np.abs(r).max()) or 1.0
            err = float(np.abs(a - r).max()) / scale
            if a.shape != r.shape or err > 1e-4:
                raise AssertionError(f"matmul: {fw}'s {name} differs from NumPy's "
                                     f"(shape {a.shape} vs {r.shape}, max rel. error {err:.2g})")


def main(args: Any) -> None:
    torch = _harness.import_torch(args.no_torch)
    _harness.print_machine_line(torch)
    report = _harness.Report("matmul", args, torch)
    needle_missing = needle_model.unavailable_reason()
    rng = np.random.default_rng(0)
    rows = []
    for shape in SHAPES:
        batch, fan_in, fan_out = shape
        x = rng.standard_normal((batch, fan_in), dtype=np.float32)
        w = rng.standard_normal((fan_in, fan_out), dtype=np.float32) / np.float32(np.sqrt(fan_in))
        b = rng.standard_normal(fan_out, dtype=np.float32)
        g = rng.standard_normal((batch, fan_out), dtype=np.float32)
        iters = iterations_for(shape, args.quick)
        steps = {"numpy": numpy_step(x, w, b, g)}
        if needle_missing is None:
            steps["needle"] = needle_step(x, w, b, g)
        if torch is not None:
            steps["torch"] = torch_step(torch, x, w, b, g)
        check_same(steps)
        cases = {k: (lambda f=f, n=iters: _harness.timed_loop(f, n)) for k, f in steps.items()}
        flops = 6 * batch * fan_in * fan_out * iters
        results = _harness.rates(cases, args.repeats, work=flops, scale=1e-9)
        med = {k: results[k]["median"] if k in results else None for k in FRAMEWORKS}
        ratios = {"needle/numpy": _harness.ratio(med["needle"], med["numpy"]),
                  "needle/torch": _harness.ratio(med["needle"], med["torch"]),
                  "torch/numpy": _harness.ratio(med["torch"], med["numpy"])}
        report.record({"batch": batch, "in": fan_in, "out": fan_out, "iterations_per_repeat": iters},
                      "GFLOP/s", results, ratios)
        rows.append([f"{batch} x {fan_in}x{fan_out}", *(med[k] for k in FRAMEWORKS),
                     *ratios.values()])
    notes = [f"needle left out: {needle_missing}"] if needle_missing else []
    notes.append("ratios of GFLOP/s: above 1.0 the first is faster; target needle/numpy >= 0.95")
    report.table(f"Linear forward+backward, GFLOP/s (median of {args.repeats}, "
                 f"{_harness.bench_threads()} thread(s))",
                 ["batch x in x out", "needle", "torch", "numpy", "needle/numpy", "needle/torch",
                  "torch/numpy"], rows, notes)
    report.finish()
