"""Backend conformance: run every method of the contract against a NumPy reference.

A third-party backend proves itself with one call in its test suite::

    from needle.testing import check_backend
    check_backend(MyBackend())          # raises AssertionError listing every mismatch

or inspects the report without raising: ``report = check_backend(b, raise_on_failure=False)``.
Each case feeds small NumPy-made inputs through ``backend.array``, calls one
method, and compares ``backend.to_numpy`` of the result (shape, dtype, values)
with what NumPy computes. Random draws are checked for range, rough moments and
reproducibility under ``seed``; in-place methods for what they write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import Backend
from ..device import Device
from ..device import device as _device

__all__ = ["ConformanceReport", "Mismatch", "check_backend"]

# A check of a result: None when it is right, else the problem. (``...``: cases bind their
# loop variables as default arguments, ``lambda g, a=axis: ...``.)
Check = Callable[..., "str | None"]


@dataclass(frozen=True)
class Mismatch:
    """One failed case: the contract method, the inputs it ran on, what went wrong."""

    method: str
    case: str
    problem: str

    def __str__(self) -> str:
        return f"{self.method} [{self.case}]: {self.problem}"


@dataclass
class ConformanceReport:
    """What ``check_backend`` ran (method names and cases) and what did not match."""

    backend: str
    cases: list[tuple[str, str]] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def methods(self) -> set[str]:
        """Contract methods exercised by at least one case."""
        return {method for method, _ in self.cases}

    def __str__(self) -> str:
        head = (f"backend {self.backend}: {len(self.cases)} cases over {len(self.methods)} "
                f"methods, {len(self.mismatches)} mismatches")
        return "\n  ".join([head, *map(str, self.mismatches)])


def check_backend(backend: Backend | Device | str, *, rtol: float = 1e-5, atol: float = 1e-6,
                  raise_on_failure: bool = True) -> ConformanceReport:
    """Check ``backend`` (an object, a Device or a device name) against NumPy.

    Returns the report; raises AssertionError with it when something mismatches
    and ``raise_on_failure`` is true.
    """
    if not isinstance(backend, Backend):
        backend = _device(backend).backend
    runner = _Runner(backend, rtol, atol)
    reason = backend.availability()
    if reason is not None:
        runner.fail("availability", "here", f"backend reports itself unusable: {reason}")
    else:
        runner.report.cases.append(("availability", "usable here"))
    if reason is None and runner.check_round_trip():
        for group in (_creation, _random, _elementwise, _reductions, _shapes, _indexing,
                      _optional):
            group(runner, backend)
    if raise_on_failure and not runner.report.ok:
        raise AssertionError(str(runner.report))
    return runner.report


@dataclass(frozen=True)
class _Host:
    """A result computed on the host (a NumPy value), compared without ``to_numpy``."""

    value: np.ndarray


class _Runner:
    def __init__(self, backend: Backend, rtol: float, atol: float) -> None:
        self.b = backend
        self.rtol, self.atol = rtol, atol
        self.report = ConformanceReport(getattr(backend, "name", type(backend).__name__))

    def fail(self, method: str, case: str, problem: str) -> None:
        self.report.cases.append((method, case))
        self.report.mismatches.append(Mismatch(method, case, problem))

    def put(self, a: np.ndarray) -> Any:
        return self.b.array(a, a.dtype)

    def case(self, method: str, label: str, fn: Callable[..., Any],
             expected: np.ndarray | np.generic | Check) -> None:
        """Run ``fn`` (which calls ``method``) and compare its result with ``expected``."""
        self.report.cases.append((method, label))
        try:
            out = fn()
            got = out.value if isinstance(out, _Host) else np.asarray(self.b.to_numpy(out))
            problem = expected(got) if callable(expected) else self.compare(got, expected)
        except NotImplementedError:
            problem = "not implemented"
        except Exception as exc:  # a conformance report lists crashes too
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            self.report.mismatches.append(Mismatch(method, label, problem))

    def compare(self, got: np.ndarray, want: np.ndarray | np.generic) -> str | None:
        want = np.asarray(want)
        if got.shape != want.shape:
            return f"shape {got.shape}, expected {want.shape}"
        if got.dtype != want.dtype:
            return f"dtype {got.dtype}, expected {want.dtype}"
        if want.dtype.kind in "biu":
            ok = np.array_equal(got, want)
        else:
            ok = np.allclose(got, want, rtol=self.rtol, atol=self.atol, equal_nan=True)
        if not ok:
            err = np.abs(got.astype(np.float64) - want.astype(np.float64))
            j = int(np.nanargmax(err)) if err.size else 0
            return (f"values differ (worst at flat index {j}: got {got.flat[j]!r}, "
                    f"expected {want.flat[j]!r})")
        return None

    def check_round_trip(self) -> bool:
        """array/to_numpy underpin every other case: stop early when they fail."""
        before = len(self.report.mismatches)
        for dt in ("float32", "float64", "int64", "bool"):
            a = (np.arange(6).reshape(2, 3) % 3).astype(dt)
            self.case("array", f"{dt} round trip", lambda a=a: self.put(a), a)
        self.case("to_numpy", "float64 (2,3)", lambda: self.put(_X[0, :2, :3]), _X[0, :2, :3])
        return len(self.report.mismatches) == before


_rng = np.random.default_rng(0)
_X = _rng.standard_normal((2, 3, 4))
_Y = _rng.standard_normal((3, 4))
_POS = _rng.uniform(0.5, 2.0, (2, 3, 4))
_COL = _rng.standard_normal((2, 1, 4))


def _creation(r: _Runner, b: Backend) -> None:
    f32, f64, i64 = np.dtype("float32"), np.dtype("float64"), np.dtype("int64")
    r.case("device_count", "at least one", lambda: _Host(np.asarray(b.device_count() >= 1)),
           np.True_)
    r.case("array", "float64 data as float32", lambda: b.array(_X, f32), _X.astype(f32))
    r.case("array", "nested list", lambda: b.array([[1, 2], [3, 4]], f32),
           np.array([[1, 2], [3, 4]], f32))
    r.case("array", "Python scalar", lambda: b.array(3.5, f64), np.array(3.5))
    r.case("full", "(2,3) float32", lambda: b.full((2, 3), 1.5, f32), np.full((2, 3), 1.5, f32))
    r.case("full", "() float64", lambda: b.full((), -2.0, f64), np.array(-2.0))
    vals = np.array([0.0, 1.0, 2.5, -3.0])
    r.case("astype", "float64 -> float32", lambda: b.astype(r.put(vals), f32), vals.astype(f32))
    r.case("astype", "float64 -> int64", lambda: b.astype(r.put(vals), i64), vals.astype(i64))
    r.case("astype", "bool -> float32", lambda: b.astype(r.put(vals > 0), f32),
           (vals > 0).astype(f32))
    r.case("astype", "same dtype", lambda: b.astype(r.put(vals), f64), vals)
    idx = np.array([0, 3, 1, 3])
    r.case("one_hot", "4 classes", lambda: b.one_hot(4, r.put(idx), f32), np.eye(4, dtype=f32)[idx])
    r.case("arange", "int64", lambda: b.arange(5, i64), np.arange(5, dtype=i64))
    r.case("arange", "float32", lambda: b.arange(5, f32), np.arange(5, dtype=f32))

    def copy_is_independent() -> Any:
        a = r.put(_Y)
        c = b.copy(a)
        b.setitem(c, (0, 0), 99.0)
        return a

    r.case("copy", "values", lambda: b.copy(r.put(_X)), _X)
    r.case("copy", "independent of the original", copy_is_independent, _Y)


def _random(r: _Runner, b: Backend) -> None:
    f32, f64 = np.dtype("float32"), np.dtype("float64")

    def reproducible(draw: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            b.seed(3)
            first = np.asarray(b.to_numpy(draw())).copy()
            b.seed(3)
            second = np.asarray(b.to_numpy(draw()))
            return _Host(np.asarray(np.array_equal(first, second)))
        return run

    def moments(shape: tuple[int, ...], dtype: np.dtype, lo: float, hi: float, mean: float,
                std: float) -> Check:
        def check(got: np.ndarray) -> str | None:
            if got.shape != shape or got.dtype != dtype:
                return f"shape/dtype {got.shape} {got.dtype}, expected {shape} {dtype}"
            if got.size and (got.min() < lo or got.max() > hi):
                return f"values outside [{lo}, {hi}]: min {got.min()}, max {got.max()}"
            if abs(got.mean() - mean) > 0.1 or abs(got.std() - std) > 0.1:
                return f"mean {got.mean():.3f} / std {got.std():.3f}, expected ~{mean} / ~{std}"
            return None
        return check

    for name, draw in (("seed", lambda: b.rand((5,), f64)),
                       ("seed", lambda: b.randn((5,), f64)),
                       ("seed", lambda: b.permutation(7))):
        r.case(name, "same draws after the same seed", reproducible(draw), np.True_)
    r.case("rand", "(2000,) float32", lambda: b.rand((2000,), f32),
           moments((2000,), f32, 0.0, 1.0, 0.5, 12 ** -0.5))
    r.case("randn", "(2000,) float64", lambda: b.randn((2000,), f64),
           moments((2000,), f64, -np.inf, np.inf, 0.0, 1.0))
    r.case("randb", "p=0.3", lambda: b.randb((2000,), 0.3, f32),
           lambda g: None if set(np.unique(g)) <= {0, 1} and abs(g.mean() - 0.3) < 0.05
           and g.dtype == f32 else f"not Bernoulli(0.3) float32 0/1 values: mean {g.mean()}")
    r.case("randb", "p=1", lambda: b.randb((50,), 1.0, f64), np.ones(50))
    r.case("permutation", "of range(10)", lambda: b.permutation(10),
           lambda g: None if g.dtype.kind in "iu" and sorted(g.tolist()) == list(range(10))
           else f"{g!r} is not a permutation of range(10)")


def _elementwise(r: _Runner, b: Backend) -> None:
    x, y, pos = r.put(_X), r.put(_Y), r.put(_POS)
    x32, y32 = r.put(_X.astype("float32")), r.put(_Y.astype("float32"))
    for name in ("add", "subtract", "multiply", "divide", "maximum"):
        ref = getattr(np, name)
        fn = getattr(b, name)
        r.case(name, "(2,3,4) with (3,4)", lambda fn=fn: fn(x, y), ref(_X, _Y))
        r.case(name, "with a Python scalar", lambda fn=fn: fn(x, 1.5), ref(_X, 1.5))
        r.case(name, "float32 stays float32", lambda fn=fn: fn(x32, y32),
               ref(_X.astype("float32"), _Y.astype("float32")))
        r.case(name, "float32 with a scalar", lambda fn=fn: fn(x32, 2.0),
               ref(_X.astype("float32"), np.float32(2.0)))
    r.case("power", "positive base, array exponent", lambda: b.power(pos, y), _POS ** _Y)
    r.case("power", "scalar exponent 2", lambda: b.power(x, 2), _X ** 2)
    r.case("power", "scalar exponent 0.5", lambda: b.power(pos, 0.5), _POS ** 0.5)
    r.case("power", "scalar exponent -1", lambda: b.power(pos, -1), _POS ** -1.0)
    for name, arg, ref in (("negative", x, -_X), ("exp", x, np.exp(_X)), ("log", pos, np.log(_POS)),
                           ("tanh", x, np.tanh(_X)), ("sqrt", pos, np.sqrt(_POS))):
        r.case(name, "(2,3,4)", lambda name=name, arg=arg: getattr(b, name)(arg), ref)
    r.case("exp", "float32", lambda: b.exp(x32), np.exp(_X.astype("float32")))
    for name in ("sin", "cos"):
        r.case(name, "(2,3,4)", lambda name=name: getattr(b, name)(x), getattr(np, name)(_X))
        r.case(name, "float32", lambda name=name: getattr(b, name)(x32),
               getattr(np, name)(_X.astype("float32")))
    cond = _X > 0
    r.case("where", "arrays", lambda: b.where(r.put(cond), x, r.put(_POS)), np.where(cond, _X, _POS))
    r.case("where", "scalar", lambda: b.where(r.put(cond), x, 0.0), np.where(cond, _X, 0.0))
    twin = _X.copy()
    twin[0, 1] = 0.0
    for name in ("equal", "greater", "greater_equal", "less", "less_equal"):
        fn, ref = getattr(b, name), getattr(np, name)
        r.case(name, "arrays", lambda fn=fn: fn(x, r.put(twin)), ref(_X, twin))
        r.case(name, "broadcast", lambda fn=fn: fn(x, y), ref(_X, _Y))
        r.case(name, "scalar", lambda fn=fn: fn(x, 0.0), ref(_X, 0.0))


def _reductions(r: _Runner, b: Backend) -> None:
    x = r.put(_X)
    # leading, trailing and middle axes: backends may take different routes for each
    for axis in (None, (0,), (1,), (-1,), (0, 1), (1, 2), (0, 2)):
        for keepdims in (False, True):
            label = f"axis={axis}, keepdims={keepdims}"
            r.case("sum", label, lambda a=axis, k=keepdims: b.sum(x, a, k),
                   np.asarray(np.sum(_X, axis=axis, keepdims=keepdims)))
            r.case("max", label, lambda a=axis, k=keepdims: b.max(x, a, k),
                   np.asarray(np.max(_X, axis=axis, keepdims=keepdims)))
    r.case("sum", "float32 stays float32", lambda: b.sum(r.put(_X.astype("float32")), (2,)),
           np.sum(_X.astype("float32"), axis=2))
    rows = _X.reshape(6, 4)  # a classifier's logits: many short rows
    r.case("max", "rows of a matrix", lambda: b.max(r.put(rows), (1,), True),
           np.max(rows, axis=1, keepdims=True))
    r.case("sum", "rows of a matrix", lambda: b.sum(r.put(rows), (1,)), np.sum(rows, axis=1))
    for axis in (None, (1,), (0, 2)):
        for keepdims in (False, True):
            r.case("prod", f"axis={axis}, keepdims={keepdims}",
                   lambda a=axis, k=keepdims: b.prod(x, a, k),
                   np.asarray(np.prod(_X, axis=axis, keepdims=keepdims)))
    for argmax_axis in (None, 1):
        r.case("argmax", f"axis={argmax_axis}", lambda a=argmax_axis: b.argmax(x, a),
               lambda g, a=argmax_axis: r.compare(g.astype(np.int64),
                                           np.asarray(np.argmax(_X, axis=a), np.int64)))
    m1, m2 = _rng.standard_normal((3, 4)), _rng.standard_normal((4, 5))
    bm1, bm2 = _rng.standard_normal((2, 1, 3, 4)), _rng.standard_normal((5, 4, 2))
    for label, a, c in (("2-D", m1, m2), ("batched", _X, _rng.standard_normal((2, 4, 5))),
                        ("broadcast batch axes", bm1, bm2),
                        ("matrix times batch", m1, _rng.standard_normal((2, 4, 5))),
                        ("float32", m1.astype("float32"), m2.astype("float32"))):
        r.case("matmul", label, lambda a=a, c=c: b.matmul(r.put(a), r.put(c)), np.matmul(a, c))


def _shapes(r: _Runner, b: Backend) -> None:
    x = r.put(_X)
    r.case("reshape", "(2,3,4) -> (6,4)", lambda: b.reshape(x, (6, 4)), _X.reshape(6, 4))
    r.case("reshape", "with -1", lambda: b.reshape(x, (4, -1)), _X.reshape(4, -1))
    r.case("reshape", "to ()", lambda: b.reshape(r.put(np.array([2.0])), ()), np.array(2.0))
    r.case("transpose", "(2,0,1)", lambda: b.transpose(x, (2, 0, 1)), _X.transpose(2, 0, 1))
    r.case("transpose", "swap last two", lambda: b.transpose(x, (0, 2, 1)), _X.transpose(0, 2, 1))
    r.case("broadcast_to", "(2,1,4) -> (3,2,5,4)", lambda: b.broadcast_to(r.put(_COL), (3, 2, 5, 4)),
           np.broadcast_to(_COL, (3, 2, 5, 4)))
    r.case("broadcast_to", "() -> (2,3)", lambda: b.broadcast_to(r.put(np.array(1.5)), (2, 3)),
           np.full((2, 3), 1.5))
    other = _rng.standard_normal((2, 2, 4))
    r.case("concatenate", "axis 1", lambda: b.concatenate([x, r.put(other)], 1),
           np.concatenate([_X, other], 1))
    r.case("concatenate", "axis None (flattens)", lambda: b.concatenate([x, r.put(_Y)], None),
           np.concatenate([_X, _Y], None))
    r.case("stack", "axis 0", lambda: b.stack([r.put(_Y)] * 3, 0), np.stack([_Y] * 3, 0))
    r.case("stack", "axis -1", lambda: b.stack([x, x], -1), np.stack([_X, _X], -1))
    r.case("flip", "axes (0, 2)", lambda: b.flip(x, (0, 2)), np.flip(_X, (0, 2)))
    r.case("flip", "axis (1,)", lambda: b.flip(x, (1,)), np.flip(_X, (1,)))
    pads = ((0, 0), (1, 2), (2, 0))
    r.case("pad", str(pads), lambda: b.pad(x, pads), np.pad(_X, pads))


def _indexing(r: _Runner, b: Backend) -> None:
    x = r.put(_X)
    rows, cols = np.array([0, 1, 1]), np.array([2, 0])
    for label, index in (("int", 1), ("slices", (slice(None), slice(1, 3))),
                         ("negative step", slice(None, None, -1)),
                         ("step 2 on the last axis", (..., slice(None, None, 2))),
                         ("None and Ellipsis", (None, Ellipsis, 0)),
                         ("negative int", (-1, -2))):
        r.case("getitem", label, lambda i=index: b.getitem(x, i), np.asarray(_X[index]))
    r.case("getitem", "integer array", lambda: b.getitem(x, r.put(rows)), _X[rows])
    r.case("getitem", "slice and integer array",
           lambda: b.getitem(x, (slice(None), r.put(cols))), _X[:, cols])

    def written(index: Any, value: Any) -> Callable[[], Any]:
        def run() -> Any:
            a = b.copy(x)
            b.setitem(a, index, r.put(value) if isinstance(value, np.ndarray) else value)
            return a
        return run

    targets: list[tuple[str, Any, Any]] = [
        ("scalar into a slice", (0, slice(1, 3)), 7.0),
        ("array into a slice", (slice(None), 1), _rng.standard_normal((2, 4))),
        ("broadcast row", (1,), _rng.standard_normal(4)),
        ("everything (...)", ..., _POS)]
    for label, target, value in targets:
        want = _X.copy()
        want[target] = value
        r.case("setitem", label, written(target, value), want)

    def accumulated(shape: tuple[int, ...], index: Any, value: np.ndarray) -> Callable[[], Any]:
        def run() -> Any:
            a = b.full(shape, 0.0, np.dtype("float64"))
            idx = tuple(r.put(i) for i in index) if isinstance(index, tuple) else r.put(index)
            b.add_at(a, idx, r.put(value))
            return a
        return run

    flat_idx, vals = np.array([0, 1, 1, 4, 1]), np.arange(1.0, 6.0)
    want = np.zeros(5)
    np.add.at(want, flat_idx, vals)
    r.case("add_at", "repeated indices accumulate", accumulated((5,), flat_idx, vals), want)
    pair = (np.array([0, 2, 0]), np.array([1, 1, 1]))
    want2 = np.zeros((3, 2))
    np.add.at(want2, pair, vals[:3])
    r.case("add_at", "tuple of index arrays", accumulated((3, 2), pair, vals[:3]), want2)


def _windows(shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int]) -> Any:
    """(i, j, ki, kj, row, col): every output pixel, kernel tap and the pixel it reads."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    ho = (shape[1] - dh * (kh - 1) - 1) // sh + 1
    wo = (shape[2] - dw * (kw - 1) - 1) // sw + 1
    for i in range(ho):
        for j in range(wo):
            for ki in range(kh):
                for kj in range(kw):
                    yield i, j, ki, kj, i * sh + ki * dh, j * sw + kj * dw


def _im2col_reference(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                      dilation: tuple[int, int]) -> np.ndarray:
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    n, h, wd, c = x.shape
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((n, ho, wo, kh, kw, c), x.dtype)
    for i, j, ki, kj, row, col in _windows(x.shape, kernel, stride, dilation):
        cols[:, i, j, ki, kj] = x[:, row, col]
    return cols.reshape(n * ho * wo, kh * kw * c)


def _col2im_reference(cols: np.ndarray, shape: tuple[int, ...], kernel: tuple[int, int],
                      stride: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, cols.dtype)
    n, c = shape[0], shape[3]
    by_pixel = cols.reshape(n, -1, kernel[0] * kernel[1] * c)
    kw, sw, dw = kernel[1], stride[1], dilation[1]
    wo = (shape[2] - dw * (kw - 1) - 1) // sw + 1
    for i, j, ki, kj, row, col in _windows(shape, kernel, stride, dilation):
        tap = (ki * kw + kj) * c
        out[:, row, col] += by_pixel[:, i * wo + j, tap:tap + c]
    return out


def _conv_reference(x: np.ndarray, w: np.ndarray, stride: tuple[int, int],
                    dilation: tuple[int, int]) -> np.ndarray:
    cols = _im2col_reference(x, w.shape[:2], stride, dilation)
    n, h, wd, _ = x.shape
    (kh, kw), (sh, sw), (dh, dw) = w.shape[:2], stride, dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    return (cols @ w.reshape(-1, w.shape[3])).reshape(n, ho, wo, w.shape[3])


# (kernel, stride, dilation) of the conv cases: square, rectangular, dilated, and windows
# that cannot overlap (a backend may take a shortcut there)
_CONV_CASES = (((3, 3), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (3, 1), (1, 1)),
               ((2, 3), (1, 2), (2, 1)), ((2, 2), (2, 2), (1, 1)), ((1, 2), (2, 3), (1, 2)))


def _lse_reference(a: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.asarray(np.squeeze(out, axis=axis))


def _optional(r: _Runner, b: Backend) -> None:
    x = r.put(_X)
    for axis, keepdims in (((1,), False), ((0, 2), True), (None, False)):
        r.case("logsumexp", f"axis={axis}, keepdims={keepdims}",
               lambda a=axis, k=keepdims: b.logsumexp(x, a, k), _lse_reference(_X, axis, keepdims))
    big = np.array([[1000.0, 10000.0, 100.0], [-np.inf, -np.inf, -np.inf]])
    def stable() -> Any:
        with np.errstate(divide="ignore"):  # log(0) on the -inf row is the expected -inf
            return b.logsumexp(r.put(big), (1,))

    r.case("logsumexp", "large values and an all -inf row", stable, np.array([10000.0, -np.inf]))
    img = _rng.standard_normal((2, 6, 7, 3))
    for kernel, stride, dilation in _CONV_CASES:
        label = f"kernel {kernel}, stride {stride}, dilation {dilation}"
        ker = _rng.standard_normal((*kernel, 3, 4))
        r.case("conv", label, lambda k=ker, s=stride, d=dilation: b.conv(r.put(img), r.put(k),
                                                                            s, d),
               _conv_reference(img, ker, stride, dilation))
        r.case("im2col", label, lambda k=kernel, s=stride, d=dilation: b.im2col(r.put(img), k,
                                                                                s, d),
               _im2col_reference(img, kernel, stride, dilation))
        cols = _rng.standard_normal(_im2col_reference(img, kernel, stride, dilation).shape)
        r.case("col2im", label, lambda c=cols, k=kernel, s=stride, d=dilation: b.col2im(
            r.put(c), img.shape, k, s, d), _col2im_reference(cols, img.shape, kernel, stride,
                                                             dilation))
    _fused_layers(r, b)
    _optimizer_steps(r, b)
    edges = np.array([[-np.inf, -2.0, -0.0, 0.0, 1.5, np.inf, np.nan]], np.float32)
    want = np.maximum(edges, 0), (edges > 0).astype(np.float32)
    for part, name in ((0, "value"), (1, "mask")):
        r.case("relu", f"{name} at -inf, -0, 0, inf and NaN",
               lambda i=part: b.relu(r.put(edges))[i], want[part])
    r.case("relu", "+0.0 (not -0.0) for negative inputs",
           lambda: _Host(np.signbit(b.to_numpy(b.relu(r.put(edges))[0][:, :4]))),
           np.zeros((1, 4), bool))
    r.case("synchronize", "returns once queued work is done", lambda: _synced(b),
           np.asarray(True))
    r.case("from_dlpack", "a host array through DLPack",
           lambda: b.from_dlpack(b.array(_X, _X.dtype)), _X)


def _synced(b: Backend) -> _Host:
    b.synchronize()
    return _Host(np.asarray(True))


def _fused_layers(r: _Runner, b: Backend) -> None:
    x, w, bias = _rng.standard_normal((5, 3)), _rng.standard_normal((3, 4)), _rng.standard_normal((1, 4))
    r.case("linear", "with bias", lambda: b.linear(r.put(x), r.put(w), r.put(bias)), x @ w + bias)
    r.case("linear", "without bias", lambda: b.linear(r.put(x), r.put(w), None), x @ w)
    gamma, beta = _rng.uniform(0.5, 2.0, 4), _rng.standard_normal(4)
    h = x @ w
    mean, var = h.mean(0, keepdims=True), h.var(0, keepdims=True)
    x_hat = (h - mean) / np.sqrt(var + 1e-5)
    inv_std = 1 / np.sqrt(var + 1e-5)
    want = (x_hat * gamma + beta, mean, var, x_hat, inv_std)
    for i, name in enumerate(("y", "mean", "var", "x_hat", "inv_std")):
        r.case("batch_norm", name, lambda i=i: b.batch_norm(r.put(h), r.put(gamma), r.put(beta),
                                                            1e-5)[i], want[i])
    g = _rng.standard_normal((5, 4))
    n = g.shape[0]
    grads = ((gamma * inv_std / n) * (n * g - g.sum(0) - x_hat * (g * x_hat).sum(0)),
             (g * x_hat).sum(0, keepdims=True), g.sum(0, keepdims=True))
    for i, name in enumerate(("dx", "dweight", "dbias")):
        r.case("batch_norm_backward", name, lambda i=i: b.batch_norm_backward(
            r.put(g), r.put(x_hat), r.put(inv_std), r.put(gamma))[i], grads[i])

    z = _rng.standard_normal((5, 4)) * 3
    labels = np.array([3, 0, 1, 3, 2], dtype=np.int64)
    lse = np.log(np.exp(z).sum(1))
    rows = lse - z[np.arange(5), labels]
    dz = np.exp(z - lse[:, None])
    dz[np.arange(5), labels] -= 1
    for reduction, pair in (("mean", (rows.mean(), dz / 5)), ("none", (rows, dz))):
        for i, name in enumerate(("loss", "dlogits")):
            r.case("softmax_cross_entropy", f"{name}, reduction {reduction}",
                   lambda i=i, red=reduction: b.softmax_cross_entropy(
                       r.put(z), r.put(labels), red)[i], pair[i])


def _optimizer_steps(r: _Runner, b: Backend) -> None:
    p0, grad = _rng.standard_normal((3, 4)), _rng.standard_normal((3, 4))
    lr, momentum, wd = 0.1, 0.9, 0.01

    def sgd_reference(steps: int, mom: float) -> np.ndarray:
        p, u = p0.copy(), np.zeros_like(p0)
        for _ in range(steps):
            g = grad + wd * p
            u = mom * u + (1 - mom) * g if mom else g
            p = p - lr * u
        return p

    def sgd(steps: int, mom: float) -> Callable[[], Any]:
        def run() -> Any:
            p, g, velocity = r.put(p0), r.put(grad), None
            for _ in range(steps):
                velocity = b.sgd_update(p, g, velocity, lr, mom, wd)
            untouched = np.array_equal(np.asarray(b.to_numpy(g)), grad)
            return p if untouched else r.put(np.full_like(p0, np.nan))
        return run

    for steps, mom in ((1, 0.0), (2, momentum)):
        r.case("sgd_update", f"{steps} steps, momentum {mom}", sgd(steps, mom),
               sgd_reference(steps, mom))

    def adam_reference(steps: int) -> np.ndarray:
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        for t in range(1, steps + 1):
            g = grad + wd * p
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            p = p - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        return p

    def adam() -> Any:
        p, g = r.put(p0), r.put(grad)
        m, v = b.full(p0.shape, 0.0, p0.dtype), b.full(p0.shape, 0.0, p0.dtype)
        for t in (1, 2):
            b.adam_update(p, g, m, v, lr, 0.9, 0.999, 1e-8, wd, t)
        untouched = np.array_equal(np.asarray(b.to_numpy(g)), grad)
        return p if untouched else r.put(np.full_like(p0, np.nan))

    r.case("adam_update", "2 steps with weight decay", adam, adam_reference(2))
