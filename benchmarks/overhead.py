"""Microseconds per small op: needle vs PyTorch vs the same NumPy calls.

On tiny arrays the arithmetic costs next to nothing, so these numbers are the
framework's own per-op cost: Python dispatch, graph bookkeeping, gradient
accumulation. NumPy's column is the floor: what the same array calls cost bare.
PyTorch is optional here; without it only the NumPy ratios are printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import _harness
import numpy as np

FRAMEWORKS = ("needle", "torch", "numpy")
Make = Callable[[np.random.Generator], Callable[[], Any]]


# -- the cases: each framework gets a factory returning one call's work -----------
def add_cases(grad: bool) -> dict[str, Make]:
    """``a + b`` on 10x10; with ``grad`` the inputs require gradients (the graph is recorded)."""
    def needle(rng):
        import needle as ndl
        a, b = (ndl.Tensor(rng.standard_normal((10, 10)), requires_grad=grad) for _ in range(2))
        return lambda: a + b

    def torch(rng):
        import torch as th
        a, b = (th.tensor(rng.standard_normal((10, 10)), dtype=th.float32, requires_grad=grad)
                for _ in range(2))
        return lambda: a + b

    def numpy(rng):
        a, b = (rng.standard_normal((10, 10), dtype=np.float32) for _ in range(2))
        return lambda: a + b

    return {"needle": needle, "torch": torch, "numpy": numpy}


def matmul_cases() -> dict[str, Make]:
    """``c = a @ b`` on 64x64, then the gradients of a and b for a given dc."""
    def needle(rng):
        import needle as ndl
        a, b = (ndl.Tensor(rng.standard_normal((64, 64))) for _ in range(2))
        g = ndl.Tensor(rng.standard_normal((64, 64)), requires_grad=False)

        def step():
            a.grad = b.grad = None
            (a @ b).backward(g)
        return step

    def torch(rng):
        import torch as th
        a, b = (th.tensor(rng.standard_normal((64, 64)), dtype=th.float32, requires_grad=True)
                for _ in range(2))
        g = th.tensor(rng.standard_normal((64, 64)), dtype=th.float32)

        def step():
            a.grad = b.grad = None
            (a @ b).backward(g)
        return step

    def numpy(rng):
        a, b, g = (rng.standard_normal((64, 64), dtype=np.float32) for _ in range(3))

        def step():
            c = a @ b
            return c, g @ b.T, a.T @ g
        return step

    return {"needle": needle, "torch": torch, "numpy": numpy}


def chain_cases() -> dict[str, Make]:
    """Backward alone of ``sum(relu(x * w + b) * 2)`` on 10x10 (five ops); the forward
    is rebuilt before each call, untimed: the call returns its own seconds."""
    def autograd(leaf: Callable[[np.ndarray], Any]) -> Make:
        """The case for a framework whose ``leaf(array)`` makes a tensor requiring grad
        (needle's and torch's code for it is the same)."""
        def make(rng):
            # float32 for both: the draws are float64 arrays, which needle keeps as float64
            x, w, b = (leaf(rng.standard_normal((10, 10), dtype=np.float32)) for _ in range(3))

            def step():
                x.grad = w.grad = b.grad = None
                out = ((x * w + b).relu() * 2.0).sum()
                start = time.perf_counter()
                out.backward()
                return time.perf_counter() - start
            return step
        return make

    def needle_leaf(a):
        import needle as ndl
        return ndl.Tensor(a)

    def torch_leaf(a):
        import torch as th
        return th.tensor(a, requires_grad=True)

    def numpy(rng):
        x, w, b = (rng.standard_normal((10, 10), dtype=np.float32) for _ in range(3))

        def step():
            pre = x * w + b
            start = time.perf_counter()
            dpre = np.full_like(pre, 2.0)  # d sum / d(relu * 2)
            dpre *= pre > 0
            grads = (dpre * w, dpre * x, dpre)
            seconds = time.perf_counter() - start
            del grads
            return seconds
        return step

    return {"needle": autograd(needle_leaf), "torch": autograd(torch_leaf), "numpy": numpy}


CASES: dict[str, tuple[Callable[[], dict[str, Make]], bool]] = {
    # name: (factories, whether each call returns its own timed seconds)
    "add 10x10 (grad)": (lambda: add_cases(True), False),
    "add 10x10 (no grad)": (lambda: add_cases(False), False),
    "matmul 64x64 fwd+bwd": (matmul_cases, False),
    "5-op chain backward": (chain_cases, True),
}


def loop(step: Callable[[], Any], iters: int, self_timed: bool) -> Callable[[], float]:
    """One repeat: ``iters`` calls, returning the seconds they took."""
    if not self_timed:
        return lambda: _harness.timed_loop(step, iters)
    return lambda: sum(step() for _ in range(iters))


def seconds_per_call(step: Callable[[], Any], self_timed: bool, target: float) -> float:
    """A rough estimate, from growing batches of calls until one takes ``target / 10``
    (after a few untimed calls: first calls pay for lazy imports and allocations)."""
    loop(step, 3, self_timed)()
    n = 10
    while True:
        spent = loop(step, n, self_timed)()
        if spent > target / 10 or n >= 1_000_000:
            return spent / n
        n *= 10


def main(args: Any) -> None:
    torch = _harness.import_torch(args.no_torch)
    _harness.print_machine_line(torch)
    report = _harness.Report("overhead", args, torch)
    target = 0.02 if args.quick else 0.1  # seconds per repeat for the slowest framework
    rows = []
    for name, (factories, self_timed) in CASES.items():
        steps = {fw: make(np.random.default_rng(0)) for fw, make in factories().items()
                 if fw != "torch" or torch is not None}
        slowest = max(seconds_per_call(s, self_timed, target) for s in steps.values())
        iters = max(10, int(target / slowest))  # the same number of calls for all
        cases = {fw: loop(s, iters, self_timed) for fw, s in steps.items()}
        us = _harness.per_run(cases, args.repeats, lambda s, n=iters: s / n * 1e6)
        med = {fw: us[fw]["median"] if fw in us else None for fw in FRAMEWORKS}
        ratios = {"needle/numpy": _harness.ratio(med["needle"], med["numpy"]),
                  "needle/torch": _harness.ratio(med["needle"], med["torch"]),
                  "torch/numpy": _harness.ratio(med["torch"], med["numpy"])}
        report.record({"op": name, "calls_per_repeat": iters}, "us/call", us, ratios)
        rows.append([name, *(med[k] for k in FRAMEWORKS), *ratios.values()])
    notes = ["ratios of time per call: above 1.0 the first is slower "
             "(needle/numpy is needle's per-op overhead as a multiple of NumPy's)"]
    if torch is None:
        notes.append("PyTorch not importable: NumPy ratios only")
    report.table(f"Per-op overhead, microseconds per call (median of {args.repeats}, "
                 f"{_harness.bench_threads()} thread(s))",
                 ["op", "needle", "torch", "numpy", "needle/numpy", "needle/torch", "torch/numpy"],
                 rows, notes)
    report.finish()
