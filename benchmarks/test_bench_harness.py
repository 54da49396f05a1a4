"""Correctness of the benchmark suite (never its speed): the hand-written NumPy
network and optimizers compute what needle computes, the launcher pins threads,
the harness interleaves and reports, and a quick run works end to end."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import _harness
import _mnist
import blas
import cpu_profile
import matmul
import needle_model
import numpy as np
import numpy_mlp
import overhead
import pytest
import run as launcher
from _testing import quick_run

HERE = Path(__file__).resolve().parent


# -- the hand-written NumPy network ----------------------------------------------
def test_numpy_gradients_pass_finite_differences():
    assert numpy_mlp.self_check()["finite_difference"] < 1e-5


def test_self_check_catches_a_wrong_batch_norm_gradient(monkeypatch):
    right = numpy_mlp.NumpyMLPResNet._bn_backward

    def wrong(dout, cache):
        dz, dg, dbeta = right(dout, cache)
        return dz * 1.01, dg, dbeta

    monkeypatch.setattr(numpy_mlp.NumpyMLPResNet, "_bn_backward", staticmethod(wrong))
    with pytest.raises(AssertionError, match="finite differences"):
        numpy_mlp.self_check()


def test_numpy_network_trains_with_both_optimizers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 12), dtype=np.float32)
    y = (x[:, 0] > 0).astype(np.int64)  # learnable from one feature
    for make in (lambda p: numpy_mlp.NumpyAdam(p, lr=0.01),
                 lambda p: numpy_mlp.NumpySGD(p, lr=0.1, momentum=0.5)):
        model = numpy_mlp.NumpyMLPResNet.create(12, hidden=16, blocks=1, classes=2, drop_prob=0.1)
        opt = make(model.params)
        first, grads = model.loss_and_grads(x, y)
        for _ in range(30):
            opt.step(grads)
            loss, grads = model.loss_and_grads(x, y)
        assert loss < 0.5 * first and all(p.dtype == np.float32 for p in model.params)


def needle_with_weights(params: list[np.ndarray]):
    """needle's MLP-ResNet (no dropout) holding the NumPy network's weights."""
    import needle as ndl

    if needle_model.unavailable_reason():
        pytest.skip(f"needle cannot build the model: {needle_model.unavailable_reason()}")
    model, _ = needle_model.build(dim=params[0].shape[0], hidden=params[0].shape[1],
                                  blocks=(len(params) - 4) // 8, classes=params[-1].shape[0],
                                  drop_prob=0.0)
    ours = model.parameters()
    assert [int(np.prod(p.shape)) for p in ours] == [p.size for p in params]
    for p, value in zip(ours, params):
        p.data = ndl.Tensor(value.reshape(p.shape), dtype=value.dtype)
    model.train()
    return model


def test_numpy_network_matches_needle_loss_and_gradients():
    import needle as ndl

    rng = np.random.default_rng(1)
    x = rng.random((32, 30), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    params = numpy_mlp.init_params(30, 16, 2, 10, seed=2)
    model = needle_with_weights([p.copy() for p in params])
    loss = needle_model.submodule("nn").SoftmaxLoss()(model(ndl.Tensor(x)), ndl.Tensor(y, dtype=y.dtype))
    loss.backward()
    ours_loss, ours = numpy_mlp.NumpyMLPResNet(params, drop_prob=0.0).loss_and_grads(x, y)
    np.testing.assert_allclose(ours_loss, loss.numpy(), rtol=1e-5)
    for g, p in zip(ours, model.parameters()):
        np.testing.assert_allclose(g.reshape(-1), p.grad.numpy().reshape(-1), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name, hyper", [
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
])
def test_numpy_optimizers_match_needle_optim(name, hyper):
    import needle as ndl

    optim = needle_model.submodule("optim")
    if optim is None or not hasattr(optim, name):
        pytest.skip(f"needle.optim.{name} is not available")
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((4, 3), dtype=np.float32), rng.standard_normal(3, dtype=np.float32)]
    grads = [[rng.standard_normal(p.shape, dtype=np.float32) for p in start] for _ in range(3)]
    params = [p.copy() for p in start]
    ours = getattr(numpy_mlp, f"Numpy{name}")(params, **hyper)
    tensors = [ndl.Tensor(p) for p in start]
    theirs = getattr(optim, name)(tensors, **hyper)
    for step in grads:
        ours.step([g.copy() for g in step])
        for t, g in zip(tensors, step):
            t.grad = ndl.Tensor(g, requires_grad=False)
        theirs.step()
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p, t.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(params[0], start[0])  # the parameters did move


# -- MNIST reading ------------------------------------------------------------------
def write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reader_parses_idx_and_scales_to_unit_range(tmp_path):
    (tmp_path / "mnist").mkdir()
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_idx(tmp_path / "mnist" / _mnist.IMAGES, 2051, images)
    write_idx(tmp_path / "mnist" / _mnist.LABELS, 2049, np.array([7, 2, 1]))
    x, y = _mnist.load_test_set(tmp_path)
    assert x.shape == (3, 784) and x.dtype == np.float32 and y.tolist() == [7, 2, 1]
    np.testing.assert_allclose(x[0, :3] * 255, [0, 1, 2])


def test_mnist_reader_rejects_bad_files(tmp_path):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(FileNotFoundError, match="NEEDLE_DATA_DIR"):
        _mnist.load_test_set(tmp_path)
    write_idx(tmp_path / "mnist" / _mnist.IMAGES, 2049, np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        _mnist.load_test_set(tmp_path)


def test_batches_are_full_and_wrap_around():
    x, y = np.arange(10.0).reshape(10, 1), np.arange(10)
    got = _mnist.batches(x, y, 4, 3)
    assert [b[1].tolist() for b in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]]
    with pytest.raises(ValueError, match="batch 11 is larger"):
        _mnist.batches(x, y, 11, 1)


def test_real_mnist_test_set_loads():
    if not (_mnist.data_dir() / "mnist" / _mnist.IMAGES).is_file():
        pytest.skip(f"MNIST not found under {_mnist.data_dir()} (set NEEDLE_DATA_DIR)")
    x, y = _mnist.load_test_set()
    assert x.shape == (10000, 784) and 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))


# -- launcher and harness --------------------------------------------------------------
def test_launcher_pins_threads_and_drops_openblas_pins_together():
    env = launcher.bench_environment(2, {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "8",
                                         "PATH": "/bin"})
    assert all(env[v] == "2" for v in launcher.THREAD_VARS)
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env
    assert env["NEEDLE_BENCH_UNSET"] == "OPENBLAS_CORETYPE=Haswell" and env["PATH"] == "/bin"


def test_launcher_refuses_fewer_than_five_repeats(capsys):
    with pytest.raises(SystemExit):
        launcher.main(["matmul", "--repeats", "3"])
    assert "at least 5" in capsys.readouterr().err


def test_benchmarks_refuse_to_run_without_the_launcher(monkeypatch):
    monkeypatch.delenv("NEEDLE_BENCH_THREADS", raising=False)
    with pytest.raises(SystemExit, match="benchmarks/run.py"):
        _harness.bench_threads()


def test_interleave_rotates_order_and_drops_warmup():
    calls = []
    cases = {name: (lambda name=name: calls.append(name) or 1.0) for name in "abc"}
    cpu: dict[str, list[float]] = {}
    times = _harness.interleave(cases, repeats=2, warmup=1, cpu=cpu)
    assert calls == list("abc" "bca" "cab")
    assert times == {"a": [1.0, 1.0], "b": [1.0, 1.0], "c": [1.0, 1.0]}
    assert sorted(cpu) == ["a", "b", "c"] and all(len(v) == 2 for v in cpu.values())


def test_interleave_steps_takes_turns_every_step(monkeypatch):
    calls = []
    ticks = iter(range(1000))
    monkeypatch.setattr(_harness.time, "perf_counter", lambda: float(next(ticks)))
    steps = {name: (lambda i, name=name: calls.append((name, i))) for name in "ab"}
    times = _harness.interleave_steps(steps, n=2, repeats=2, warmup=1)
    # repeat r, step i starts the rotation at (r + i) % 2; the first repeat is warm-up
    assert calls == [
        ("a", 0), ("b", 0), ("b", 1), ("a", 1),
        ("b", 0), ("a", 0), ("a", 1), ("b", 1),
        ("a", 0), ("b", 0), ("b", 1), ("a", 1)]
    assert times == {"a": [2.0, 2.0], "b": [2.0, 2.0]}  # each step: one tick


def test_time_ratio_pairs_repeats():
    times = {"ref": [1.0, 2.0, 3.0], "x": [2.0, 2.0, 6.0], "y": [0.0, 0.0, 0.0]}
    assert _harness.time_ratio(times, "ref", "x") == 0.5  # median of 0.5, 1.0, 0.5
    assert _harness.time_ratio(times, "ref", "missing") is None
    assert _harness.time_ratio(times, "ref", "y") is None


def test_rates_take_the_median_of_repeats():
    seconds = iter([9.0, 1.0, 2.0, 4.0])  # the first is the warm-up
    out = _harness.rates({"x": lambda: next(seconds)}, repeats=3, work=8.0)
    assert out["x"]["median"] == 4.0 and out["x"]["runs"] == [8.0, 4.0, 2.0]


def test_table_aligns_columns_and_shows_missing_values():
    text = _harness.format_table("T", ["config", "a", "ratio"],
                                 [["x", 12345.6, None], ["longer", 0.5, 1.25]], ["note"])
    lines = text.splitlines()
    assert lines[0] == "T" and lines[-1] == "note"
    assert len({len(line) for line in lines[1:-1]}) == 1  # every row as wide as the header
    assert "12,346" in text and " -" in lines[3] and "1.25" in text


def test_report_saves_results_with_the_machine(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("NEEDLE_BENCH_THREADS", "1")
    monkeypatch.setattr(_harness, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(_harness, "REPO_ROOT", tmp_path)
    report = _harness.Report("demo", SimpleNamespace(save=True, quick=True), None)
    report.record({"n": 1}, "x/s", {"numpy": _harness.summarize([1.0, 3.0, 2.0])},
                  {"a/b": _harness.ratio(1.0, 4.0)})
    report.table("title", ["h"], [["row"]])
    path = report.finish()
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["ratios"] == {"a/b": 0.25} and line["results"]["numpy"]["median"] == 2.0
    saved = json.loads(path.read_text())
    assert saved["machine"]["cpu"] and saved["machine"]["threads"] == 1
    assert saved["records"][0]["config"] == {"n": 1} and "title" in saved["summary"]


def test_matmul_check_catches_a_framework_computing_something_else():
    rng = np.random.default_rng(0)
    x, w, g = (rng.standard_normal(s, dtype=np.float32) for s in ((8, 5), (5, 3), (8, 3)))
    b = np.zeros(3, np.float32)
    good = matmul.numpy_step(x, w, b, g)
    matmul.check_same({"numpy": good, "copy": good})
    bad = lambda: (lambda r: (r[0], r[1], r[2] * 2, r[3]))(good())  # noqa: E731
    with pytest.raises(AssertionError, match="bad's dW differs"):
        matmul.check_same({"numpy": good, "bad": bad})


def test_quick_overhead_run_end_to_end():
    """The launcher starts the benchmark in its own process with its pinned environment."""
    records, out = quick_run("overhead", OPENBLAS_CORETYPE="Haswell")
    lines = out.splitlines()
    assert "unset: OPENBLAS_CORETYPE=Haswell" in lines[1] and "threads 1" in lines[1]
    assert [r["config"]["op"] for r in records] == list(overhead.CASES)
    for r in records:
        assert r["results"]["needle"]["median"] > 0 and r["ratios"]["needle/numpy"] > 0
    assert "Per-op overhead" in out and "NumPy ratios only" in out


# -- cpu_profile's recorder ---------------------------------------------------------
def _small_step(ndl):
    a = ndl.Tensor(np.arange(6.0).reshape(2, 3), dtype="float64", requires_grad=False)
    w = ndl.Tensor(np.ones((3, 2)), dtype="float64")

    def step():
        loss = ndl.ops.relu(a @ w - 4.0).sum()
        loss.backward()
        return loss
    return step, w


def test_recorder_answers_replays_and_restores_the_backend():
    import needle as ndl

    backend = ndl.cpu().backend
    step, w = _small_step(ndl)
    recorder = cpu_profile.Recorder(backend)
    try:
        recorder.record(step)
        names = [name for name, *_ in recorder.calls]
        assert "matmul" in names and "sum" in names
        assert "_ones" not in names  # only the contract's top-level calls are recorded
        # answered: the same Python runs, and every backend call returns the recorded result
        w.grad = None
        out = recorder.answered(step)
        assert out._array is recorder.results[names.index("sum")]
        assert recorder.position == len(names)
        # a step that makes other calls is refused, naming the call
        with pytest.raises(ValueError, match="call 0 of the step is exp"):  # as NeedleError
            recorder.answered(lambda: ndl.ops.exp(w))
        calls = Counter()
        for i, (name, method, args, kwargs) in enumerate(recorder.calls):
            def counted(*a, _m=method, _n=name, **k):
                calls[_n] += 1
                return _m(*a, **k)
            recorder.calls[i] = (name, counted, args, kwargs)
        recorder.replay()
        assert sorted(calls.elements()) == sorted(names)
        table = recorder.by_method(rounds=2)
        assert {row[0] for row in table} == set(names)
        assert calls["matmul"] == 3 * names.count("matmul")  # replay, then two timed rounds
    finally:
        recorder.close()
    assert "matmul" not in vars(backend)  # the instance wrappers are gone
    assert type(backend).matmul is backend.matmul.__func__


# -- blas -------------------------------------------------------------------------------
def test_quick_blas_run_checks_and_times_every_shape():
    records, out = quick_run("blas")
    assert [r["config"]["shape"] for r in records] == [c[0] for c in blas.cases()]
    assert all(r["unit"] == "GFLOP/s" and r["results"]["numpy"]["median"] > 0 for r in records)
    assert "sgemm, GFLOP/s" in out and "not installed here: torch" in out


def test_blas_cases_multiply_what_the_label_says():
    for label, sa, sb, ta, tb in blas.cases():
        m, k = (sa[1], sa[0]) if ta else sa
        kb, n = (sb[1], sb[0]) if tb else sb
        dims = next(w for w in label.split() if w.count("x") == 2)
        assert k == kb and sorted(map(int, dims.split("x"))) == sorted((m, k, n)), label
