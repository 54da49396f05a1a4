"""Run needle's benchmarks: ``python benchmarks/run.py NAME`` (``all`` or one of ``BENCHMARKS``)
(and ``cpu_profile``, which explains a benchmark rather than being one, ``scaling``,
which starts MPI jobs, ``blas``, which compares BLAS libraries, and ``revisions``, which
compares this checkout with another commit: none is part of ``all``).

This launcher exists because BLAS and OpenMP read their thread counts once, when
the library loads: the variables must be set *before* NumPy or PyTorch is
imported. So it imports neither; it sets the variables and runs each benchmark in
a fresh Python process of its own. It also unsets ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` together (some machines pin an old, slow kernel with them for
correctness of old OpenBLAS builds); the results record which kernel then runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = ("mlp_resnet", "resnet9", "matmul", "overhead", "memory", "transformer_lm", "lstm_lm")
PROFILES = ("cpu_profile", "scaling", "blas", "revisions")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# Unset together, for benchmarking only (never in tests or CI).
OPENBLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CHILD_FLAG = "NEEDLE_BENCH_CHILD"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    p.add_argument("benchmark", choices=("all", *BENCHMARKS, *PROFILES))
    p.add_argument("--threads", type=int, default=1,
                   help="threads for BLAS, OpenMP and torch alike (default 1)")
    p.add_argument("--repeats", type=int, default=9,
                   help="timed repeats per case; the median is reported (at least 5)")
    p.add_argument("--quick", action="store_true", help="fewer steps per repeat (a smoke run)")
    p.add_argument("--save", action="store_true",
                   help="also write the results and the machine's description to benchmarks/results/")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    p.add_argument("--against", default=None, metavar="REV",
                   help="revisions: the commit to compare this checkout with (default HEAD)")
    p.add_argument("--at", default=None, metavar="REV",
                   help="revisions: measure this commit instead of the checkout (to time one "
                        "change on its own: --at C --against C^)")
    p.add_argument("--rounds", type=int, default=4,
                   help="revisions: runs of each tree, alternating (default 4)")
    p.add_argument("--batch", type=int, default=128,
                   help="revisions: the batch size (default 128; 8 magnifies the framework's "
                        "own time, which changes to ops, the walk or the optimizer move)")
    return p


def bench_environment(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a benchmark process runs in: threads pinned, OpenBLAS pins removed."""
    env = dict(os.environ if base is None else base)
    for var in THREAD_VARS:
        env[var] = str(threads)
    removed = {k: env.pop(k) for k in OPENBLAS_PINS if k in env}
    env["NEEDLE_BENCH_THREADS"] = str(threads)
    env["NEEDLE_BENCH_UNSET"] = ",".join(f"{k}={v}" for k, v in removed.items())
    env[CHILD_FLAG] = "1"
    return env


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.threads < 1:
        parser().error(f"--threads must be at least 1, got {args.threads}")
    if args.repeats < 5:
        parser().error(f"--repeats must be at least 5 (medians of fewer are noise), got {args.repeats}")
    if os.environ.get(CHILD_FLAG) == "1":
        # In the benchmark's own process: NumPy and torch load only now.
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        importlib.import_module(args.benchmark).main(args)
        return 0
    names = BENCHMARKS if args.benchmark == "all" else (args.benchmark,)
    rest = [a for a in argv if a != args.benchmark]
    env = bench_environment(args.threads)
    failed = []
    for name in names:
        print(f"== {name} (threads={args.threads}) ==", flush=True)
        code = subprocess.call([sys.executable, str(Path(__file__).resolve()), name, *rest], env=env)
        if code:
            failed.append(f"{name} (exit {code})")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
