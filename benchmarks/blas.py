"""GFLOP/s of single-precision GEMM at the shapes needle's training steps multiply: NumPy
(its bundled OpenBLAS) vs ``torch.mm`` (PyTorch's MKL) vs the ``mkl`` wheel's
``cblas_sgemm`` (through ctypes) vs ``blis`` — whichever of them is installed.

Why: where PyTorch trains faster only because its BLAS outruns NumPy's, the way to win is
another BLAS, not Python; this says whether one reachable from the package registries is
faster on this machine. Not part of ``all``: ``mkl`` and ``blis`` are not in the bench
environment (``pip install mkl blis`` into it, or any environment with needle, first).

    python benchmarks/run.py blas [--threads N] [--repeats N] [--quick]

Every repeat times each library once, in a rotating order; each result is first checked
against NumPy's. The shapes: MLP-ResNet at batch 1024 (each layer's forward, input
gradient ``g @ W.T`` and weight gradient ``x.T @ g``), the LSTM language model's head
and one recurrent step.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _harness
import numpy as np

# (label, A's shape, B's shape, transpose A, transpose B): C = op(A) @ op(B)
Case = tuple[str, tuple[int, int], tuple[int, int], bool, bool]


def cases(batch: int = 1024) -> list[Case]:
    out: list[Case] = []
    for i, o in ((784, 100), (100, 50), (50, 100), (100, 10)):
        out.append((f"MLP fwd {batch}x{i}x{o}", (batch, i), (i, o), False, False))
        if i != 784:  # the images need no gradient
            out.append((f"MLP dx {batch}x{o}x{i} (W^T)", (batch, o), (i, o), False, True))
        out.append((f"MLP dW {i}x{batch}x{o} (x^T)", (batch, i), (batch, o), True, False))
    return out + [("LM head fwd 320x100x10000", (320, 100), (100, 10000), False, False),
                  ("LM head dx 320x10000x100 (W^T)", (320, 10000), (100, 10000), False, True),
                  ("LM head dW 100x320x10000 (x^T)", (320, 100), (320, 10000), True, False),
                  ("LSTM fwd 16x100x400", (16, 100), (100, 400), False, False),
                  ("LSTM dh 16x400x100 (W^T)", (16, 400), (100, 400), False, True)]


def mkl_sgemm(threads: int) -> Callable[..., np.ndarray] | None:
    """``cblas_sgemm`` of the ``mkl`` wheel's ``libmkl_rt`` (in this environment's lib/)."""
    found = sorted((Path(sys.prefix) / "lib").glob("libmkl_rt.so*"))
    if not found:
        return None
    lib = ctypes.CDLL(str(found[0]))
    lib.MKL_Set_Num_Threads(threads)
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    lib.cblas_sgemm.argtypes = [i] * 6 + [f, p, i, p, i, f, p, i]
    row_major, plain, transposed = 101, 111, 112

    def gemm(a: np.ndarray, b: np.ndarray, ta: bool, tb: bool, out: np.ndarray) -> np.ndarray:
        m, k = (a.shape[1], a.shape[0]) if ta else a.shape
        n = b.shape[0] if tb else b.shape[1]
        lib.cblas_sgemm(row_major, transposed if ta else plain, transposed if tb else plain,
                        m, n, k, 1.0, a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1],
                        0.0, out.ctypes.data, n)
        return out

    return gemm


def libraries(torch: Any, threads: int) -> tuple[dict[str, Callable[..., Any]], list[str]]:
    """``name: gemm(a, b, ta, tb, out)`` for each library present, and notes on the absent."""
    def numpy_gemm(a, b, ta, tb, out):
        return np.matmul(a.T if ta else a, b.T if tb else b, out=out)

    found: dict[str, Callable[..., Any]] = {"numpy": numpy_gemm}
    missing = []
    if torch is not None:
        def torch_gemm(a, b, ta, tb, out):
            x, y = torch.from_numpy(a), torch.from_numpy(b)
            return torch.mm(x.T if ta else x, y.T if tb else y, out=torch.from_numpy(out))
        found["torch"] = torch_gemm
    else:
        missing.append("torch")
    mkl = mkl_sgemm(threads)
    if mkl is not None:
        found["mkl"] = mkl
    else:
        missing.append("mkl (pip install mkl)")
    try:
        import blis.py
    except ImportError:
        missing.append("blis (pip install blis)")
    else:
        if threads == 1:  # the wheel's BLIS runs on one thread
            found["blis"] = lambda a, b, ta, tb, out: blis.py.gemm(a, b, out=out, trans1=ta,
                                                                   trans2=tb, beta=0.0)
    return found, missing


def repeat(gemm: Callable[..., Any], operands: tuple, calls: int) -> Callable[[], float]:
    """One repeat: the seconds of ``calls`` products."""
    return lambda: _harness.timed_loop(lambda: gemm(*operands), calls)


def main(args: Any) -> None:
    torch = _harness.import_torch(args.no_torch)
    _harness.print_machine_line(torch)
    threads = _harness.bench_threads()
    report = _harness.Report("blas", args, torch)
    libs, missing = libraries(torch, threads)
    rng = np.random.default_rng(0)
    rows = []
    for label, sa, sb, ta, tb in cases():
        a, b = (rng.standard_normal(s, dtype=np.float32) for s in (sa, sb))
        m, k = (sa[1], sa[0]) if ta else sa
        n = sb[0] if tb else sb[1]
        out = np.empty((m, n), np.float32)
        want = (a.T if ta else a) @ (b.T if tb else b)
        for name, gemm in libs.items():
            np.testing.assert_allclose(np.asarray(gemm(a, b, ta, tb, out)), want, rtol=1e-3,
                                       atol=1e-3, err_msg=f"{name}'s product differs at {label}")
        flops = 2.0 * m * n * k
        calls = max(3, int((1e8 if args.quick else 3e8) / flops))
        run_cases = {name: repeat(gemm, (a, b, ta, tb, out), calls) for name, gemm in libs.items()}
        results = _harness.rates(run_cases, args.repeats, work=flops * calls, scale=1e-9)
        ratios = {f"{name}/numpy": _harness.paired_ratio(results, name, "numpy")
                  for name in libs if name != "numpy"}
        report.record({"shape": label, "calls_per_repeat": calls}, "GFLOP/s", results, ratios)
        rows.append([label, *(results[name]["median"] for name in libs), *ratios.values()])
    notes = ["ratios: paired speed ratios against NumPy (above 1.0 the library is faster)"]
    notes += [f"not installed here: {', '.join(missing)}"] if missing else []
    report.table(f"sgemm, GFLOP/s (median of {args.repeats}, {threads} thread(s))",
                 ["C = op(A) op(B)", *libs, *(f"{n}/numpy" for n in libs if n != "numpy")],
                 rows, notes)
    report.finish()
