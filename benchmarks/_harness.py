"""What every benchmark shares: thread pinning, interleaved timing, JSON lines,
the summary table, the machine's description saved with the results, the training
step every framework runs, and the memory probes of the workers that measure peaks.

Frameworks are compared by ratios of runs *interleaved in one process*: each
repeat runs every framework once, in a rotating order, so drift in the machine
(another process taking the second core, frequency changes) hits all of them
alike. Warm-up repeats are run and discarded; the median of the rest is reported.

Only the standard library is imported here: ``memory.py`` and ``resnet9.py`` start their
memory workers before NumPy is loaded (see ``peak_bytes``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]


# -- process set-up -----------------------------------------------------------
def bench_threads() -> int:
    """Threads set by ``run.py``; refuse to run without it (BLAS would already be loaded)."""
    value = os.environ.get("NEEDLE_BENCH_THREADS")
    if value is None:
        raise SystemExit("run benchmarks through benchmarks/run.py (e.g. `hatch run bench:all`): "
                         "it pins BLAS/OpenMP threads before NumPy is imported")
    return int(value)


def import_torch(disabled: bool = False) -> Any | None:
    """PyTorch pinned to the benchmark's thread count, or None when absent or disabled."""
    if disabled:
        return None
    try:
        import torch
    except ImportError:
        print("# PyTorch is not installed here: its columns are left out "
              "(use `hatch run bench:...`, which installs torch==2.13.0)", file=sys.stderr)
        return None
    threads = bench_threads()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    return torch


# -- timing ---------------------------------------------------------------------
def interleave(cases: dict[str, Callable[[], float]], repeats: int, warmup: int = 1,
               cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Run each case ``warmup + repeats`` times, interleaved in a rotating order.

    A case runs one repeat's work and returns the wall seconds it measured itself
    (so it can leave set-up out). Returns the timed (post-warm-up) seconds per case.
    ``cpu``, if given, receives each repeat's process CPU seconds: on a shared
    machine, where other processes take the core away, CPU time moves less than
    wall time (with one thread; with more, CPU time adds the threads up).
    """
    names = list(cases)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start_cpu = time.process_time()
            seconds = cases[name]()
            cpu_seconds = time.process_time() - start_cpu
            if r >= warmup:
                times[name].append(seconds)
                if cpu is not None:
                    cpu.setdefault(name, []).append(cpu_seconds)
    return times


def interleave_steps(steps: dict[str, Callable[[int], Any]], n: int, repeats: int,
                     warmup: int = 1) -> dict[str, list[float]]:
    """Per case, the seconds of each repeat's ``n`` steps, the cases taking turns
    step by step (the order rotates every step); the warm-up repeat is dropped.

    Why: on a shared machine slow spells last seconds, longer than one case's turn
    when cases alternate whole repeats, so even paired ratios move; alternating
    single steps puts every case in the same spell.
    """
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for r in range(warmup + repeats):
        spent = dict.fromkeys(names, 0.0)
        for i in range(n):
            k = (r + i) % len(names)
            for name in names[k:] + names[:k]:
                start = clock()
                steps[name](i)
                spent[name] += clock() - start
        if r >= warmup:
            for name in names:
                times[name].append(spent[name])
    return times


def time_ratio(times: dict[str, list[float]], a: str, b: str) -> float | None:
    """Median over repeats of ``a``'s seconds / ``b``'s seconds in the same repeat."""
    if a not in times or b not in times:
        return None
    pairs = [x / y for x, y in zip(times[a], times[b]) if y]
    return statistics.median(pairs) if pairs else None


def per_run(cases: dict[str, Callable[[], float]], repeats: int,
            convert: Callable[[float], float]) -> dict[str, dict[str, Any]]:
    """Interleave ``cases``; per case, the summary of ``convert(wall seconds)`` of each
    repeat, plus ``median_cpu``: ``convert`` of the median process CPU seconds."""
    cpu: dict[str, list[float]] = {}
    times = interleave(cases, repeats, cpu=cpu)
    results = {}
    for name, seconds in times.items():
        results[name] = summarize([convert(s) for s in seconds])
        results[name]["median_cpu"] = convert(statistics.median(cpu[name]))
    return results


def rates(cases: dict[str, Callable[[], float]], repeats: int, work: float,
          scale: float = 1.0) -> dict[str, dict[str, Any]]:
    """``per_run`` of the rate ``work / seconds * scale`` (examples/s, GFLOP/s)."""
    return per_run(cases, repeats, lambda s: work / s * scale)


def timed_loop(fn: Callable[[], Any], iterations: int) -> float:
    """Seconds for ``iterations`` calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return time.perf_counter() - start


def summarize(values: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": [float(f"{v:.6g}") for v in values]}


# -- training steps, the same for every framework ----------------------------------
Step = Callable[[int], Any]  # trains on batch i, returns that step's loss (native type)


def train_step(forward: Callable[[Any], Any], loss_fn: Callable[[Any, Any], Any], opt: Any,
               batches: Sequence[tuple[Any, Any]]) -> Step:
    """``step(i)``: zero the gradients, ``loss_fn(forward(x), y)`` on batch ``i`` (cycling),
    backward, one optimizer step; returns the loss. Written once for needle and PyTorch:
    their optimizers differ only in the name of zeroing (``reset_grad``, ``zero_grad``)."""
    zero_grad = opt.zero_grad if hasattr(opt, "zero_grad") else opt.reset_grad

    def step(i: int) -> Any:
        x, y = batches[i % len(batches)]
        zero_grad()
        loss = loss_fn(forward(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def needle_batches(ndl: Any, data: Sequence[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """NumPy (x, y) pairs as needle constants, each keeping its dtype."""
    return [(ndl.Tensor(x, dtype=x.dtype, requires_grad=False),
             ndl.Tensor(y, dtype=y.dtype, requires_grad=False)) for x, y in data]


def torch_batches(torch: Any, data: Sequence[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """NumPy (x, y) pairs as torch tensors sharing their memory."""
    return [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]


def loss_value(loss: Any) -> float:
    """A step's loss as a float, whatever framework returned it."""
    return float(loss.item() if hasattr(loss, "item") else loss)


def check_same_losses(steps: dict[str, Step], n: int, rtol: float = 1e-3) -> list[float]:
    """Run ``n`` steps of each framework from the same weights: every loss must agree
    (so all really train the same network). Returns the first framework's losses."""
    losses: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(n):
        for name, step in steps.items():
            losses[name].append(loss_value(step(i)))
    ref, *others = steps
    import numpy as np

    for name in others:
        np.testing.assert_allclose(losses[name], losses[ref], rtol=rtol,
                                   err_msg=f"{name}'s losses differ from {ref}'s")
    return losses[ref]


def epoch_runner(step: Step, steps: int, final: dict[str, float], key: str) -> Callable[[], float]:
    """One repeat: ``steps`` consecutive steps, timed; the last loss goes to ``final[key]``."""
    def run() -> float:
        start = time.perf_counter()
        for i in range(steps):
            loss = step(i)
        seconds = time.perf_counter() - start
        final[key] = loss_value(loss)
        return seconds

    return run


Pairs = Sequence[tuple[str, str]]


@dataclass
class Comparison:
    """Frameworks training side by side, timed both ways (see ``compare``)."""

    results: dict[str, dict[str, Any]]  # rates per framework, whole repeats interleaved
    by_step: dict[str, list[float]]  # seconds per repeat, taking turns step by step
    final: dict[str, float]  # each framework's last loss

    def median(self, name: str) -> float | None:
        return self.results[name]["median"] if name in self.results else None

    def ratio(self, a: str, b: str) -> float | None:
        """Speed ratio of the medians: above 1.0 ``a`` is faster."""
        return ratio(self.median(a), self.median(b))

    def paired(self, a: str, b: str) -> float | None:
        return paired_ratio(self.results, a, b)

    def stepwise(self, a: str, b: str) -> float | None:
        """Speed ratio taking turns step by step (``b``'s seconds over ``a``'s)."""
        return time_ratio(self.by_step, b, a)

    def record(self, report: Report, config: dict[str, Any], unit: str, ratios: Pairs,
               paired: Pairs | None = None, stepwise: Pairs | None = None,
               **extra: Any) -> dict[str, Any]:
        """One JSON line: the rates, ``a/b`` speed ratios of each kind, the step-by-step
        seconds and the final losses (``paired`` and ``stepwise`` default to ``ratios``)."""
        def named(kind: Callable[[str, str], float | None], pairs: Pairs) -> dict[str, Any]:
            return {f"{a}/{b}": kind(a, b) for a, b in pairs}

        return report.record(
            config, unit, self.results, named(self.ratio, ratios),
            paired_ratios=named(self.paired, ratios if paired is None else paired),
            step_interleaved_ratios=named(self.stepwise, ratios if stepwise is None else stepwise),
            step_interleaved_seconds=self.by_step,
            final_loss={k: round(v, 4) for k, v in self.final.items()}, **extra)


def compare(steps: dict[str, Step], n: int, repeats: int, work: float) -> Comparison:
    """Time ``steps`` (one per framework) two ways: whole repeats of ``n`` steps
    interleaved (rates of ``work`` per second), then the frameworks taking turns step by
    step, where a slow spell of a shared machine (they last seconds) hits all of them.

    The second only with one thread: with more, every turn puts thread pools to sleep and
    wakes them (PyTorch's OpenMP pool most), which that schedule would measure instead.
    """
    final: dict[str, float] = {}
    cases = {name: epoch_runner(step, n, final, name) for name, step in steps.items()}
    results = rates(cases, repeats, work=work)
    by_step = interleave_steps(steps, n, repeats) if bench_threads() == 1 else {}
    return Comparison(results, by_step, final)


# -- reporting ------------------------------------------------------------------
class Report:
    """Collects one JSON line per configuration and prints the summary table."""

    def __init__(self, bench: str, args: Any, torch: Any | None) -> None:
        self.bench = bench
        self.args = args
        self.torch = torch
        self.records: list[dict[str, Any]] = []
        self.table_lines: list[str] = []

    def record(self, config: dict[str, Any], unit: str, results: dict[str, dict[str, Any]],
               ratios: dict[str, float | None], **extra: Any) -> dict[str, Any]:
        rec = {"bench": self.bench, "config": config, "unit": unit, "results": results,
               "ratios": {k: (None if v is None else round(v, 4)) for k, v in ratios.items()},
               "threads": bench_threads(), **extra}
        self.records.append(rec)
        print(json.dumps(rec), flush=True)
        return rec

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
              notes: Sequence[str] = ()) -> str:
        text = format_table(title, header, rows, notes)
        self.table_lines.append(text)
        print(text, flush=True)
        return text

    def finish(self) -> Path | None:
        if not self.args.save:
            return None
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = RESULTS_DIR / f"{self.bench}-{stamp}-t{bench_threads()}.json"
        payload = {"bench": self.bench, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                   "args": {k: v for k, v in vars(self.args).items()},
                   "machine": machine_info(self.torch), "records": self.records,
                   "summary": "\n\n".join(self.table_lines)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
        tmp.replace(path)
        print(f"# saved {path.relative_to(REPO_ROOT)}", flush=True)
        return path


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def paired_ratio(results: dict[str, dict[str, Any]], a: str, b: str) -> float | None:
    """Median over repeats of ``a``'s run / ``b``'s run from the *same* repeat.

    Why: on a shared machine a slow moment hits every framework of one repeat alike,
    so per-repeat ratios scatter far less than the ratio of two separate medians.
    """
    if a not in results or b not in results:
        return None
    pairs = [x / y for x, y in zip(results[a]["runs"], results[b]["runs"]) if y]
    return statistics.median(pairs) if pairs else None


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def format_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
                 notes: Sequence[str] = ()) -> str:
    cells = [list(header)] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title]
    for j, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(notes)
    return "\n".join(lines)


# -- memory of a worker process ------------------------------------------------------
MIB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident memory now (psutil, else /proc/self/statm)."""
    try:
        import psutil
    except ImportError:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


def peak_bytes() -> int:
    """``ru_maxrss``. Linux carries it across exec from the process that started us,
    so benchmarks start their workers while they are still small (stdlib only)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def high_water_bytes() -> int | None:
    """Linux's VmHWM: the peak of this process's own memory map only (None elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_high_water() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM to the current resident size."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_worker(script: str, *args: Any) -> dict[str, Any]:
    """``python script args...`` in a fresh process; its last stdout line, parsed as JSON."""
    done = subprocess.run([sys.executable, script, *map(str, args)], capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"{Path(script).name} worker {' '.join(map(str, args))} failed "
                           f"(exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the machine ----------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[dict[str, Any]]:
    """Thread pools as threadpoolctl sees them (library, version, kernel, threads)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import numpy as np

        cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
        deps = (cfg or {}).get("Build Dependencies", {})
        return [{"source": "numpy.show_config (threadpoolctl not installed)",
                 "blas": deps.get("blas"), "lapack": deps.get("lapack")}]
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "threading_layer",
            "num_threads")
    return [{k: d.get(k) for k in keep if k in d} for d in threadpool_info()]


def git_state() -> dict[str, Any]:
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {}


def machine_info(torch: Any | None = None) -> dict[str, Any]:
    import needle
    import numpy as np

    info: dict[str, Any] = {
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(), "python": platform.python_version(),
        "numpy": np.__version__, "needle": getattr(needle, "__version__", None),
        "torch": None if torch is None else torch.__version__,
        "threads": bench_threads(),
        "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                      "MKL_NUM_THREADS")},
        "unset_for_benchmark": os.environ.get("NEEDLE_BENCH_UNSET") or None,
        "thread_pools": blas_info(), "git": git_state(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    return info


def print_machine_line(torch: Any | None = None) -> None:
    """One comment line naming the BLAS kernel in use (what OPENBLAS_CORETYPE would change)."""
    pools = blas_info()
    blas = [f"{p.get('internal_api')} {p.get('version')} {p.get('architecture') or ''} "
            f"threads={p.get('num_threads')}".strip() for p in pools if p.get("user_api") == "blas"]
    removed = os.environ.get("NEEDLE_BENCH_UNSET") or "none"
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    import numpy as np

    print(f"# {cpu_model()}, {os.cpu_count()} CPUs (load {load}); numpy {np.__version__}; torch "
          f"{None if torch is None else torch.__version__}; threads {bench_threads()}; "
          f"BLAS: {'; '.join(blas) or 'unknown'}; unset: {removed}", flush=True)
