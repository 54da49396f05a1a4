"""Is this checkout faster or slower than another revision? The MLP-ResNet step of both
needle trees, each against the hand-written NumPy step, the trees taking turns.

Two revisions cannot share a process (both are ``needle``), and the absolute speed of a
shared machine drifts by 30% within minutes, so each run measures a ratio that drift
cancels: needle against NumPy, the two taking turns step by step (``mlp_resnet``'s
steadiest column). Runs of the two trees alternate round by round (the order swaps each
round), so a slow spell hits both. The change is the ratio of the two medians; the
spread of each tree's runs says how far to trust it (a change inside the spreads is noise).

Each run imports the other revision's packages from a temporary ``git worktree`` (its
``packages/*/src`` first on ``PYTHONPATH``) and checks that ``needle`` really came from
there; the steps, data and timing are this checkout's code for both trees.

    hatch run bench:revisions [--against REV] [--at REV] [--rounds N] [--batch N] [--quick]

``--against`` defaults to ``HEAD``: the uncommitted changes against the last commit.
``--at C --against C^`` times one past change on its own (commit ``C`` against its
parent), both trees from temporary worktrees, still with this checkout's harness.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PACKAGES = ("needle-core", "needle-nn", "needle-backend-cpu")
CONFIGS = ("sgd", "adam")
BATCH = 128  # the default; a small batch (--batch 8) magnifies the framework's own time


def source_path(tree: Path) -> str:
    """``PYTHONPATH`` entries that make ``tree``'s packages win over the installed ones."""
    return os.pathsep.join(str(tree / "packages" / p / "src") for p in PACKAGES)


def worker(tree: Path, repeats: int, quick: bool, batch: int = BATCH) -> dict[str, float]:
    """In a fresh process whose ``needle`` is ``tree``'s: by-step needle/NumPy speed per config."""
    import _harness
    import _mnist
    import mlp_resnet
    import needle as ndl

    where = Path(ndl.__file__).resolve()
    if not where.is_relative_to(tree.resolve()):
        raise RuntimeError(f"needle was imported from {where}, not from the tree {tree}")
    x, y = _mnist.load_test_set()
    steps = 8 if quick else min(10_000 // batch, 250)
    speeds = {}
    for opt in CONFIGS:
        data = _mnist.batches(x, y, batch, steps)
        fns = {"needle": mlp_resnet.needle_step(ndl, opt, data, {}),
               "numpy": mlp_resnet.numpy_step(opt, data)}
        times = _harness.interleave_steps(fns, steps, repeats)
        speeds[opt] = _harness.time_ratio(times, "numpy", "needle")
    return speeds


def run_tree(tree: Path, args: Any) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_path(tree), str(HERE),
                                                      env.get("PYTHONPATH", "")]))
    argv = [__file__, "--worker", str(tree), "--repeats", str(args.repeats),
            "--batch", str(args.batch)]
    done = subprocess.run([sys.executable, *argv, *(["--quick"] if args.quick else [])],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"the run of {tree} failed (exit {done.returncode}):\n"
                           f"{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def resolve(rev: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"revisions: {rev!r} is not a commit of {REPO} ({done.stderr.strip()})")
    return done.stdout.strip()


def _label(rev: str, commit: str) -> str:
    return f"{rev} ({commit[:10]})" if rev != commit[:len(rev)] else commit[:10]


def compare(runs: dict[str, list[dict[str, float]]], names: Sequence[str]
            ) -> list[dict[str, Any]]:
    """Per config: each tree's median and spread of speeds, and the change of the first
    tree against the second (``this / other - 1``)."""
    rows = []
    this, other = names
    for opt in CONFIGS:
        stats = {}
        for name in names:
            values = [r[opt] for r in runs[name]]
            stats[name] = {"median": statistics.median(values), "min": min(values),
                           "max": max(values), "runs": [round(v, 4) for v in values]}
        change = stats[this]["median"] / stats[other]["median"] - 1
        rows.append({"config": opt, "trees": stats, "change": change})
    return rows


def main(args: Any) -> None:
    import _harness
    import numpy  # noqa: F401  (loaded first, so the machine line can name its BLAS)

    rev = args.against or "HEAD"
    commit = resolve(rev)
    label = _label(rev, commit)
    at = getattr(args, "at", None)
    at_commit = resolve(at) if at else None
    if at_commit == commit:
        raise SystemExit(f"revisions: --at and --against name the same commit ({commit[:10]})")
    this = _label(at, at_commit) if at and at_commit else "this checkout"
    _harness.print_machine_line()
    report = _harness.Report("revisions", args, None)
    with tempfile.TemporaryDirectory(prefix="needle-rev-") as tmp:
        wanted = {label: commit, **({this: at_commit} if at_commit else {})}
        worktrees = {name: Path(tmp) / f"tree{i}" for i, name in enumerate(wanted)}
        try:
            for name, path in worktrees.items():
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach",
                                "--quiet", str(path), wanted[name]], check=True)
            trees = {this: worktrees.get(this, REPO), label: worktrees[label]}
            names = list(trees)
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for r in range(args.rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    runs[name].append(run_tree(trees[name], args))
                    print(f"# round {r + 1}, {name}: {json.dumps(runs[name][-1])}", flush=True)
        finally:
            for path in worktrees.values():
                if path.exists():
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                    str(path)], check=False)
    rows = compare(runs, names)
    for row in rows:
        report.record({"config": row["config"], "batch": args.batch, "against": commit,
                       **({"at": at_commit} if at_commit else {})},
                      "needle/numpy by-step speed", row["trees"], {"change": row["change"]})
    report.table(
        f"MLP-ResNet batch {args.batch}: needle/NumPy speed by step, {this} against {label}",
        ["optimizer", this, "spread", label, "spread ", "change"],
        [[row["config"],
          row["trees"][names[0]]["median"],
          f"{row['trees'][names[0]]['min']:.3f}-{row['trees'][names[0]]['max']:.3f}",
          row["trees"][names[1]]["median"],
          f"{row['trees'][names[1]]['min']:.3f}-{row['trees'][names[1]]['max']:.3f}",
          f"{row['change']:+.1%}"] for row in rows],
        [f"{args.rounds} rounds, the trees alternating; above 1.0 needle is faster than NumPy",
         f"change: {this}'s median against the other's; inside the spreads it is noise"])
    report.finish()


if __name__ == "__main__" and "--worker" in sys.argv:
    # A worker process: this tree's needle comes first on PYTHONPATH (set by run_tree).
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--worker", type=Path, required=True)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--batch", type=int, default=BATCH)
    a = p.parse_args()
    print(json.dumps(worker(a.worker, a.repeats, a.quick, a.batch)))
