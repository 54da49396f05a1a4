"""Where a needle training step's CPU time goes: the kernels, or the framework around them.

``mlp_resnet`` says how fast needle trains beside PyTorch and NumPy; this says why. For
each of its configurations it records the backend calls of one MLP-ResNet training step,
then times four step functions taking turns step by step (``_harness.interleave_steps``):

* ``needle``: the normal training step;
* ``kernels``: the recorded backend calls replayed with their recorded arguments and no
  framework: what the step would cost if everything above the backend were free;
* ``framework``: the normal step with every backend call answered from the recording and
  no kernels: what modules, ops, tensors, the backward walk and the optimizer cost (less
  the recorder's own cost per call, timed separately and subtracted);
* ``numpy``: the hand-written NumPy step (``numpy_mlp``), the yardstick.

Then it lists the replayed calls by backend method (each call timed on its own, so the
clock adds a little to every row). Replays write into the model's own arrays, so the
parameters drift during the run: read the times, not the losses.

    hatch run bench:cpu_profile [--threads N] [--repeats N] [--quick]
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import _harness
import _mnist
import mlp_resnet
import numpy as np

Call = tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def _forget(backend: Any) -> None:
    from needle.ops import gradmath

    gradmath.forget(backend)


class Recorder:
    """Wraps every public method of one backend object (instance attributes, so the class
    and other backends are untouched) to record, replay or answer its top-level calls.

    Calls a backend method makes to another (``linear`` to ``matmul``) pass straight through.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.mode = "off"  # "record" | "answer" | "off"
        self.calls: list[Call] = []
        self.results: list[Any] = []
        self.position = 0
        self._depth = 0
        names = [n for n in dir(type(backend))
                 if not n.startswith("_") and callable(getattr(backend, n))]
        for name in names:
            setattr(backend, name, self._wrap(name, getattr(backend, name)))
        self.names = names
        _forget(backend)  # the backward's array namespace holds the methods: take the wrappers

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.mode == "off" or self._depth:
                return method(*args, **kwargs)
            if self.mode == "answer":
                if self.position >= len(self.results) or self.calls[self.position][0] != name:
                    raise RuntimeError(f"call {self.position} of the step is {name}, not what was "
                                       f"recorded: the step's backend calls changed between steps")
                self.position += 1
                return self.results[self.position - 1]
            self._depth += 1
            try:
                out = method(*args, **kwargs)
            finally:
                self._depth -= 1
            self.calls.append((name, method, args, kwargs))
            self.results.append(out)
            return out
        return call

    def record(self, step: Callable[[], Any]) -> None:
        self.calls, self.results, self.mode = [], [], "record"
        try:
            step()
        finally:
            self.mode = "off"

    def answered(self, step: Callable[[], Any]) -> Any:
        """``step()`` with every backend call answered from the recording."""
        self.mode, self.position = "answer", 0
        try:
            out = step()
        finally:
            self.mode = "off"
        if self.position != len(self.calls):
            raise RuntimeError(f"the step made {self.position} backend calls, the recording has "
                               f"{len(self.calls)}")
        return out

    def own_cost(self) -> None:
        """Every wrapper called in answer mode and nothing else: the recorder's share of
        the ``framework`` time, to subtract."""
        self.mode, self.position = "answer", 0
        try:
            for name, _, args, kwargs in self.calls:
                getattr(self.backend, name)(*args, **kwargs)
        finally:
            self.mode = "off"

    def replay(self) -> None:
        for _, method, args, kwargs in self.calls:
            method(*args, **kwargs)

    def by_method(self, rounds: int) -> list[tuple[str, int, float]]:
        """(method, calls per step, µs per step), slowest first, from ``rounds`` replays."""
        spent: Counter[str] = Counter()
        clock = time.perf_counter
        for _ in range(rounds):
            for name, method, args, kwargs in self.calls:
                start = clock()
                method(*args, **kwargs)
                spent[name] += clock() - start
        counts = Counter(name for name, *_ in self.calls)
        return [(name, counts[name], seconds / rounds * 1e6) for name, seconds in spent.most_common()]

    def close(self) -> None:
        for name in self.names:
            delattr(self.backend, name)
        _forget(self.backend)


def profile(ndl: Any, opt: str, data: list, repeats: int) -> tuple[dict[str, float], list]:
    """Median ms per step of needle, kernels, framework and numpy; and the method table."""
    steps = len(data)
    needle = mlp_resnet.needle_step(ndl, opt, data, {})
    for i in range(min(steps, 3)):  # warm: the optimizer packs its buffers on its first step
        needle(i)
    recorder = Recorder(ndl.cpu().backend)
    try:
        recorder.record(lambda: needle(0))
        cases = {"needle": needle,
                 "kernels": lambda i: recorder.replay(),
                 "framework": lambda i: recorder.answered(lambda: needle(i)),
                 "recorder": lambda i: recorder.own_cost(),
                 "numpy": mlp_resnet.numpy_step(opt, data)}
        times = _harness.interleave_steps(cases, steps, repeats)
        table = recorder.by_method(rounds=max(3, 600 // steps))
    finally:
        recorder.close()
    ms = {k: float(np.median(v)) / steps * 1e3 for k, v in times.items()}
    ms["framework"] -= ms.pop("recorder")
    return ms, table


def main(args: Any) -> None:
    import needle as ndl

    print(f"# {_harness.bench_threads()} thread(s); median of {args.repeats} repeats, "
          f"the four step functions taking turns", flush=True)
    x, y = _mnist.load_test_set()
    examples = 2560 if args.quick else 10_000
    rows, tables = [], []
    for opt in mlp_resnet.OPTIMIZERS:
        for batch in mlp_resnet.BATCHES:
            steps = max(3 if args.quick else 30, examples // batch)
            ms, table = profile(ndl, opt, _mnist.batches(x, y, batch, steps), args.repeats)
            rows.append([f"{opt}, batch {batch}", ms["needle"], ms["kernels"], ms["framework"],
                         ms["numpy"], ms["framework"] / ms["needle"], ms["numpy"] / ms["needle"]])
            tables.append((f"{opt}, batch {batch}", table))
    print(_harness.format_table(
        "Milliseconds per training step of MLP-ResNet (needle = kernels + framework, roughly)",
        ["config", "needle", "kernels", "framework", "numpy", "framework share", "numpy/needle"],
        rows, ["kernels: needle's backend calls replayed alone; framework: needle with every "
               "backend call answered from a recording",
               "numpy/needle is a speed ratio, as mlp_resnet's by-step column"]), flush=True)
    for config, table in tables:
        print(_harness.format_table(f"Backend calls of one step, {config} (µs per step)",
                                    ["method", "calls", "µs"], table), flush=True)
