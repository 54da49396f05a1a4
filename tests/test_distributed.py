"""needle.distributed: in-process checks in a world of one (and a stand-in world of two),
then real 2-rank runs under ``mpiexec`` (skipped with the reason where it is absent).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import needle as ndl
import needle.distributed as dist
import numpy as np
import pytest
from needle.distributed import collectives, world

HERE = Path(__file__).resolve().parent
TIMEOUT = 120  # seconds for one mpiexec run (2 ranks start in ~3 s on 2 busy cores)


def mpiexec() -> str | None:
    """The mpiexec beside this Python (the mpich wheel's), else one on PATH."""
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(
    mpiexec() is None or importlib.util.find_spec("mpi4py") is None,
    reason="mpiexec or mpi4py is absent: pip install 'needle-nn[mpi]'")


def run_mpi(*args: str, n: int = 2, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([mpiexec(), "-n", str(n), *args], capture_output=True, text=True,
                          timeout=timeout, env=mpi_env())


def mpi_env() -> dict[str, str]:
    import os
    env = {k: v for k, v in os.environ.items() if k not in world.SIZE_VARIABLES
           and k not in world.RANK_VARIABLES}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


class TwoRanks(world.World):
    """A stand-in for rank 0 of two whose partner always sends the same data as this rank."""

    size = 2

    def allreduce(self, buf, op):
        if op == "sum":
            buf *= 2

    def allgather(self, value):
        return np.stack([value, value])


# -- a world of one: the same script runs alone -------------------------------------------
def test_alone_is_a_world_of_one_without_mpi(monkeypatch):
    for name in world.SIZE_VARIABLES + world.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(world, "_world", None)
    w = dist.init()
    assert (dist.rank(), dist.world_size(), dist.is_main(), dist.local_rank()) == (0, 1, True, 0)
    assert dist.init() is w
    dist.barrier()
    x = ndl.Tensor(np.arange(3, dtype="float32"))
    for op in ("sum", "mean", "max", "min"):
        y = dist.all_reduce(x, op)
        np.testing.assert_array_equal(y.numpy(), x.numpy())
        assert y.device == x.device and y.cached_data is not x.cached_data
    np.testing.assert_array_equal(dist.broadcast(x).numpy(), x.numpy())
    assert dist.broadcast_object({"a": [1]}) == {"a": [1]}


def test_importing_needle_distributed_never_imports_mpi():
    code = ("import needle, needle.distributed as d, sys; d.init(); "
            "print('mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=mpi_env(), timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_a_launcher_without_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(world, "_world", None)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    with pytest.raises(dist.DistributedError, match=r"2 processes.*needle-nn\[mpi\]"):
        dist.init()


def test_a_launch_that_mpi_does_not_see_is_refused():
    with pytest.raises(dist.DistributedError, match="started 4 processes.*world of 1"):
        world._check_launch(world.World(), 4)


def test_bad_arguments_name_the_problem(monkeypatch):
    monkeypatch.setattr(world, "_world", world.World())
    x = ndl.Tensor(np.ones(2, dtype="float32"))
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(x, "avg")
    with pytest.raises(ValueError, match="floating-point"):
        dist.all_reduce(ndl.Tensor(np.ones(2, dtype="int64"), dtype="int64"), "mean")
    with pytest.raises(TypeError, match="needle Tensor"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(ValueError, match=r"root must be a rank in \[0, 1\)"):
        dist.broadcast(x, root=1)
    with pytest.raises(TypeError, match="already distributed"):
        dist.DistributedOptimizer(dist.DistributedOptimizer(ndl.optim.SGD([x])))
    with pytest.raises(TypeError, match="nn.Module"):
        dist.broadcast_parameters([x])
    monkeypatch.setenv("NEEDLE_DISTRIBUTED", "yes")
    monkeypatch.setattr(world, "_world", None)
    with pytest.raises(dist.DistributedError, match="NEEDLE_DISTRIBUTED"):
        dist.init()


# -- the optimizer wrapper -----------------------------------------------------------------
def test_distributed_optimizer_alone_steps_like_the_optimizer_it_wraps(monkeypatch):
    monkeypatch.setattr(world, "_world", world.World())
    results = []
    for wrap in (False, True):
        ndl.manual_seed(0)
        model = ndl.nn.Linear(4, 3)
        opt = ndl.optim.Adam(model.parameters(), lr=0.1)
        opt = dist.DistributedOptimizer(opt) if wrap else opt
        sched = ndl.optim.StepLR(opt, step_size=1, gamma=0.5)
        for _ in range(3):
            opt.reset_grad()
            (model(ndl.Tensor(np.ones((2, 4), "float32"))) ** 2).sum().backward()
            opt.step()
            sched.step()
        results.append((model.weight.numpy(), opt.lr, opt.state_dict()["optimizer"]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1:] == results[1][1:] == (0.1 / 8, "Adam")


def test_gradients_travel_in_one_buffer_per_dtype_and_come_back_averaged(monkeypatch):
    calls = []

    class Counting(TwoRanks):
        def allreduce(self, buf, op):
            calls.append((buf.shape, buf.dtype))
            super().allreduce(buf, op)

    w = Counting()
    model = ndl.nn.Sequential(ndl.nn.Linear(3, 4), ndl.nn.ReLU(), ndl.nn.Linear(4, 2))
    extra = ndl.nn.Parameter(np.ones(2), dtype="float64")
    unused = ndl.nn.Parameter(np.ones(5, "float32"))
    opt = dist.DistributedOptimizer(ndl.optim.SGD([*model.parameters(), extra, unused], lr=0.1),
                                    world=w)
    model(ndl.Tensor(np.ones((2, 3), "float32"))).sum().backward()
    (extra * 3.0).sum().backward()
    before = [p.grad.numpy().copy() for p in model.parameters()]
    opt.average_gradients()
    # float32: 3*4+4+4*2+2 weights, 5 (unused) zeros, 5 presence flags; float64: 2 + 1
    assert sorted(calls, key=str) == sorted([((26 + 5 + 5,), np.float32), ((3,), np.float64)],
                                            key=str)
    for g, p in zip(before, model.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), g)  # both ranks alike: the mean is itself
    assert extra.grad.dtype == np.float64 and unused.grad is None
    opt.step()  # averaged already (to clip, say): no second round
    assert len(calls) == 2
    opt.reset_grad()
    model(ndl.Tensor(np.ones((2, 3), "float32"))).sum().backward()
    opt.step()
    assert len(calls) == 4  # a new step averages again: both groups (every rank must take part)


def test_the_first_step_refuses_ranks_with_other_weights():
    class OtherWeights(TwoRanks):
        def allgather(self, value):
            other = value.copy()
            if calls.append(1) or len(calls) == 2:  # the second agreement: parameter values
                other = other + 1
            return np.stack([value, other])

    calls: list[int] = []
    p = ndl.nn.Parameter(np.ones(2, "float32"))
    opt = dist.DistributedOptimizer(ndl.optim.SGD([p], lr=0.1), world=OtherWeights())
    (p * 2.0).sum().backward()
    with pytest.raises(dist.DistributedError, match="broadcast_parameters"):
        opt.step()


# -- routes: host arrays, NCCL, host copies --------------------------------------------------
class Boxed:
    """A device array that NumPy cannot read directly (as a CuPy array)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.dtype, self.shape, self.size = a, a.dtype, a.shape, a.size
        self.data = types.SimpleNamespace(ptr=1000 + id(self) % 1000)  # a device pointer


class BoxedBackend:
    name = "cuda"
    array_types = (Boxed,)

    def to_numpy(self, x):
        return x.a.copy()

    def array(self, data, dtype):
        return Boxed(np.array(data, dtype))

    def multiply(self, x, s):
        return Boxed(x.a * x.dtype.type(s))

    def copy(self, x):
        return Boxed(x.a.copy())


def test_arrays_numpy_cannot_read_take_host_copies(monkeypatch):
    from needle.distributed import nccl
    monkeypatch.setattr(nccl, "_nccl", lambda: None)  # CuPy without NCCL (or none at all)
    cpu = ndl.cpu().backend
    assert collectives.route(cpu, TwoRanks()) == "host"
    assert collectives.route(BoxedBackend(), TwoRanks()) == "copy"
    monkeypatch.setenv("NEEDLE_NCCL", "0")
    assert collectives.route(BoxedBackend(), TwoRanks()) == "copy"
    x = Boxed(np.arange(4, dtype="float32"))
    out = collectives.reduce_array(x, BoxedBackend(), "mean", TwoRanks())
    assert isinstance(out, Boxed) and out.dtype == np.float32
    np.testing.assert_array_equal(out.a, np.arange(4))  # (x + x) / 2
    np.testing.assert_array_equal(
        collectives.reduce_array(x, BoxedBackend(), "sum", TwoRanks()).a, 2 * np.arange(4))
    assert isinstance(collectives.bcast_array(x, BoxedBackend(), 0, TwoRanks()), Boxed)
    np.testing.assert_array_equal(x.a, np.arange(4))  # the input is left alone


def test_cuda_arrays_go_to_nccl_when_cupy_has_it(monkeypatch):
    """The NCCL route's host side with a stand-in for ``cupy.cuda.nccl`` (no GPU here)."""
    calls = []

    class Communicator:
        def __init__(self, n, uid, rank):
            calls.append(("init", n, len(uid), rank))

        def allReduce(self, send, recv, count, dtype, op, stream):  # noqa: N802 - CuPy's name
            calls.append(("allReduce", send == recv, count, dtype, op, stream))

        def bcast(self, buf, count, dtype, root, stream):
            calls.append(("bcast", count, dtype, root, stream))

    nccl = types.SimpleNamespace(available=True, get_unique_id=lambda: tuple(range(-64, 64)),
                                 NcclCommunicator=Communicator, NCCL_FLOAT16=6, NCCL_FLOAT32=7,
                                 NCCL_FLOAT64=8, NCCL_INT32=2, NCCL_INT64=4, NCCL_UINT8=1,
                                 NCCL_SUM=0, NCCL_MAX=2, NCCL_MIN=3)
    cuda = types.ModuleType("cupy.cuda")
    cuda.nccl, cuda.get_current_stream = nccl, lambda: types.SimpleNamespace(ptr=77)
    cupy = types.ModuleType("cupy")
    cupy.cuda = cuda
    for name, module in (("cupy", cupy), ("cupy.cuda", cuda), ("cupy.cuda.nccl", nccl)):
        monkeypatch.setitem(sys.modules, name, module)
    w = TwoRanks()
    assert collectives.route(BoxedBackend(), w) == "nccl"
    assert collectives.route(ndl.cpu().backend, w) == "host"  # NumPy arrays stay with MPI
    x = Boxed(np.arange(6, dtype="float32"))
    out = collectives.reduce_array(x, BoxedBackend(), "mean", w)
    np.testing.assert_array_equal(out.a, np.arange(6) * 0.5)  # the stand-in leaves data as is
    collectives.bcast_array(x, BoxedBackend(), 1, w)
    assert calls == [("init", 2, 128, 0), ("allReduce", True, 6, 7, 0, 77), ("bcast", 6, 7, 1, 77)]
    with pytest.raises(TypeError, match="NCCL cannot reduce bool"):
        collectives.reduce_array(Boxed(np.ones(2, bool)), BoxedBackend(), "sum", w)
    monkeypatch.setenv("NEEDLE_NCCL", "0")
    assert collectives.route(BoxedBackend(), w) == "copy"


# -- the sampler (no MPI needed: ranks given explicitly) --------------------------------------
@pytest.mark.parametrize("n, ranks", [(10, 3), (12, 4), (7, 1)])
def test_sampler_shards_are_disjoint_equal_and_cover_all_but_the_remainder(n, ranks):
    data = list(range(n))
    for epoch in range(3):
        shards = []
        for r in range(ranks):
            s = dist.DistributedSampler(data, seed=2, num_replicas=ranks, rank=r)
            s.set_epoch(epoch)
            shards.append(s.indices())
            assert len(s) == n // ranks == len(list(s))
        flat = np.concatenate(shards)
        assert len(set(flat.tolist())) == len(flat) == n - n % ranks
    s = dist.DistributedSampler(data, shuffle=False, num_replicas=ranks, rank=ranks - 1)
    assert s.indices().tolist() == list(range(ranks - 1, n - n % ranks, ranks))


def test_sampler_rejects_what_cannot_work():
    with pytest.raises(ValueError, match="rank 2 is not in"):
        dist.DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="3 samples cannot give each of 4"):
        dist.DistributedSampler(range(3), num_replicas=4, rank=0)
    s = dist.DistributedSampler(range(8), num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="start 5 is outside"):
        s.set_epoch(0, start=5)
    other = dist.DistributedSampler(range(8), num_replicas=4, rank=0)
    with pytest.raises(ValueError, match="num_replicas"):
        other.load_state_dict(s.state_dict())
    ds = ndl.data.NDArrayDataset(np.arange(8.0)[:, None])
    with pytest.raises(ndl.data.DataError, match="shuffle must be False"):
        ndl.data.DataLoader(ds, 2, shuffle=True, sampler=s)
    with pytest.raises(ndl.data.DataError, match="index 9, outside"):
        ndl.data.DataLoader(ds, 2, sampler=[0, 9])


def test_loader_with_sampler_batches_its_indices_and_counts_batches():
    ds = ndl.data.NDArrayDataset(np.arange(10.0)[:, None])
    s = dist.DistributedSampler(ds, seed=1, num_replicas=2, rank=1)
    loader = ndl.data.DataLoader(ds, 2, sampler=s)
    assert len(loader) == 3
    s.set_epoch(4, start=2)
    got = np.concatenate([x.numpy()[:, 0] for (x,) in loader])
    np.testing.assert_array_equal(got, s.indices())
    assert len(got) == 3 and len(loader) == 2


# -- real ranks under mpiexec ------------------------------------------------------------
@pytest.fixture(scope="module")
def checks() -> subprocess.CompletedProcess:
    return run_mpi(sys.executable, str(HERE / "mpi" / "checks.py"))


@needs_mpi
@pytest.mark.parametrize("name", ["collectives", "sgd-momentum", "adam",
                                  "buffers-and-missing-grads", "sampler"])
def test_two_ranks(checks, name):
    """(sgd-momentum, adam): 2 ranks x batch 8 equal 1 process x batch 16 after 6 steps."""
    assert f"PASS {name}" in checks.stdout.splitlines(), checks.stdout + checks.stderr[-3000:]


def cuda_skip(nccl: bool) -> str | None:
    """Why the 2-rank cuda checks cannot run here (None when they can)."""
    info = {b.name: b for b in ndl.backends()}.get("cuda")
    if info is None or not info.usable:
        return f"cuda: {info.reason if info else 'needle-backend-cuda is not installed'}"
    if nccl and ndl.cuda().backend.device_count() < 2:
        return "NCCL needs a GPU per rank: fewer than 2 GPUs here"
    return None


@needs_mpi
@pytest.mark.parametrize("nccl", [False, True], ids=["host-copies", "nccl"])
def test_two_ranks_on_cuda(nccl):
    """On a GPU: the collectives and the one-big-batch equality on cuda tensors."""
    reason = cuda_skip(nccl)
    if reason:
        pytest.skip(reason)
    env = {**mpi_env(), "NEEDLE_NCCL": "1" if nccl else "0"}
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(HERE / "mpi" / "checks.py"),
                           "cuda"], capture_output=True, text=True, timeout=TIMEOUT, env=env)
    for name in ("collectives", "sgd-momentum", "adam"):
        assert f"PASS {name}" in proc.stdout.splitlines(), proc.stdout + proc.stderr[-3000:]


@needs_mpi
@pytest.mark.parametrize("how", ["kill", "raise"])
def test_a_rank_that_dies_ends_the_job(how):
    proc = run_mpi(sys.executable, str(HERE / "mpi" / "dies.py"), how, timeout=60)
    assert proc.returncode != 0
    assert "should never get here" not in proc.stdout


# -- the command line ----------------------------------------------------------------------
RUN = ["--no-progress", "--epochs", "4", "--schedule", "none", "--seed", "1", "--batch-size", "16"]


def needle_cli() -> list[str]:
    script = Path(sys.executable).with_name("needle")
    return [str(script)] if script.exists() else [sys.executable, "-m", "needle.cli"]


def metrics(run: Path) -> list[dict]:
    import json
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@needs_mpi
def test_cli_on_two_ranks_matches_one_process_and_resumes_exactly(tmp_path, capsys):
    """(d): ``--nproc 2`` on digits reaches one process's accuracy band; rank 0 alone
    writes; a run stopped by Ctrl-C (in epoch 2) and resumed under the same N equals a
    straight one bit for bit."""
    import signal
    import time

    from needle.cli import main
    from test_cli_train import assert_same_run

    a, b, alone = tmp_path / "a", tmp_path / "b", tmp_path / "alone"
    straight = subprocess.run([*needle_cli(), "train", "--nproc", "2", *RUN, "--out", str(a)],
                              capture_output=True, text=True, timeout=300, env=mpi_env())
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert straight.stderr.count("needle train: mlp-resnet") == 1  # rank 0 alone prints
    assert "batch 16 per process x 2 processes = 32 global" in straight.stderr
    assert "2 (MPI), global batch 32" in straight.stdout
    assert sorted(p.name for p in a.iterdir()) == [".needle-train.lock", "checkpoint.npz", "curves.png",
                                                   "metrics.jsonl"]
    rows = metrics(a)
    assert [m["epoch"] for m in rows] == [1, 2, 3, 4]
    assert all(m["examples"] == 1437 - 1437 % 2 for m in rows)  # both ranks' images counted
    assert main(["train", *RUN, "--out", str(alone)]) == 0
    one = metrics(alone)[-1]["test_acc"]
    assert rows[-1]["test_acc"] >= 0.9 and one >= 0.9 and abs(rows[-1]["test_acc"] - one) <= 0.04

    err = tmp_path / "err.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen([mpiexec(), "-n", "2", *needle_cli(), "train", *RUN, "--out",
                                 str(b)], stdout=subprocess.DEVNULL, stderr=stderr, env=mpi_env())
        deadline = time.monotonic() + 120
        while "epoch 1/4" not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # mpiexec passes it to both ranks
        assert proc.wait(timeout=120) == 130, err.read_text()[-3000:]
    assert "stopped" in err.read_text() and len(metrics(b)) < 4
    assert err.read_text().count("Ctrl-C: finishing this step") == 1  # rank 0 alone says it
    resumed = run_mpi(*needle_cli(), "train", "--resume", str(b), "--epochs", "4",
                      "--no-progress", timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(a, b)
    capsys.readouterr()
    assert main(["train", "--resume", str(b), "--epochs", "5", "--no-progress"]) == 2
    assert "trained on 2 processes and continues only on as many" in capsys.readouterr().err


@needs_mpi
def test_cli_error_on_every_rank_is_one_line_and_ends_the_job(tmp_path):
    proc = run_mpi(*needle_cli(), "train", "--dataset", "mnist", "--data-dir",
                   str(tmp_path / "absent"), timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("needle train: error")]
    assert len(errors) == 1 and "no such directory" in errors[0], proc.stderr
    assert "MPI_Abort" not in proc.stderr  # every rank exited: no abort, nothing lost


ONE_RANK_FAILS = """
import sys
from needle.cli.distributed import together
from needle.cli.options import CLIError

def body(par):
    if par.rank == 1:
        raise CLIError("only rank 1 has this problem")
    par.world.barrier()  # rank 0 waits for a partner that never comes
    return 0

sys.exit(together("job", body))
"""


@needs_mpi
def test_an_error_on_one_rank_names_it_and_ends_the_waiting_ones(tmp_path):
    script = tmp_path / "one_fails.py"
    script.write_text(ONE_RANK_FAILS)
    proc = run_mpi(sys.executable, str(script), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "job: error (rank 1 of 2): only rank 1 has this problem" in proc.stderr


def test_nproc_without_the_mpi_extra_is_one_clear_line(monkeypatch, capsys):
    from needle.cli import distributed, main

    real = importlib.util.find_spec
    monkeypatch.setattr(distributed.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mpi4py" else real(name, *a))
    for name in world.SIZE_VARIABLES + world.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert main(["train", "--nproc", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("needle train: error: --nproc needs the mpi extra: pip install "
                   "'needle-nn[mpi]' (mpi4py and an MPICH build)")


def test_nproc_that_contradicts_the_launcher_is_refused(monkeypatch, capsys):
    from needle.cli import main

    monkeypatch.setenv("PMI_SIZE", "3")
    assert main(["train", "--nproc", "2"]) == 2
    assert "--nproc 2, but this process was started by an MPI launcher with 3" in \
        capsys.readouterr().err


def test_the_docs_script_runs_alone_and_on_two_ranks(tmp_path):
    """docs/distributed.md's script, as printed there: alone, then under mpiexec -n 2."""
    import re
    page = (HERE.parent / "docs" / "distributed.md").read_text()
    script = tmp_path / "train_digits.py"
    script.write_text(re.search(r"```python\n(.*?)```", page, re.S).group(1))
    alone = subprocess.run([sys.executable, str(script), "1"], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path, env=mpi_env())
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert "on 1 rank(s)" in alone.stdout and (tmp_path / "digits-model.npz").exists()
    if mpiexec() is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpiexec or mpi4py is absent: only the run alone was checked")
    two = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(script), "1"],
                         capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path,
                         env=mpi_env())
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("epoch 1:") == 1 and "on 2 rank(s)" in two.stdout


def tiny_corpus(folder: Path) -> Path:
    """A 30-word 'language' in train.txt / test.txt (2,700 + 540 words): seconds to train."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for name, lines in (("train.txt", 300), ("test.txt", 60)):
        words = rng.integers(0, 30, (lines, 9))
        (folder / name).write_text("".join(" ".join(f"w{i}" for i in row) + "\n" for row in words))
    return folder


@needs_mpi
def test_lm_on_two_ranks_equals_one_process_with_twice_the_batch_after_ctrl_c_and_resume(
        tmp_path, capsys):
    """The language model: rank r trains columns r*B.. of the 2B-column stream (clipping
    the averaged gradients), so 2 ranks x batch 4 end where 1 process x batch 8 does; a
    Ctrl-C mid-epoch saves every rank's hidden state and --resume continues from it."""
    import re
    import signal
    import time

    from needle.cli import main

    lm = ["--dataset", "ptb", "--data-dir", str(tiny_corpus(tmp_path / "text")), "--hidden-dim",
          "8", "--embedding-dim", "8", "--bptt", "2", "--epochs", "6", "--schedule", "none",
          "--no-progress"]
    assert main(["train", *lm, "--batch-size", "8", "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    err = tmp_path / "err.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen([mpiexec(), "-n", "2", *needle_cli(), "train", *lm,
                                 "--batch-size", "4", "--out", str(tmp_path / "two")],
                                stdout=subprocess.DEVNULL, stderr=stderr, env=mpi_env())
        deadline = time.monotonic() + 120
        while "epoch 1/6" not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)  # mpiexec passes it to both ranks
        assert proc.wait(timeout=120) == 130, err.read_text()[-3000:]
    # an epoch of this corpus takes ~0.1 s: where the signal lands depends on the machine
    assert re.search(r"stopped in epoch [2-6] after batch", err.read_text()), \
        err.read_text()[-3000:]
    saved = ndl.load(tmp_path / "two" / "checkpoint.npz")
    h, c = saved["position"]["carry"]
    assert h.shape == c.shape == (1, 8, 8)  # both ranks' 4 columns
    resumed = run_mpi(*needle_cli(), "train", "--resume", str(tmp_path / "two"), "--no-progress",
                      timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = ndl.load(tmp_path / "one" / "checkpoint.npz")["model"]
    b = ndl.load(tmp_path / "two" / "checkpoint.npz")["model"]
    for key in a:
        np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=key)
    assert [m["epoch"] for m in metrics(tmp_path / "two")] == [1, 2, 3, 4, 5, 6]


def test_the_step_stop_decision_is_the_allreduced_one_not_a_later_ctrl_c():
    """A Ctrl-C reaching this rank just after the step's Allreduce must not stop it a step
    before the others (they would wait in the next step's collectives forever): the loop
    acts on what sync_step agreed, and the late request waits for the next step."""
    from types import SimpleNamespace

    from needle.cli.distributed import Parallel
    from needle.cli.train import StopRequest

    stop = StopRequest()

    class World:
        size, rank = 2, 0

        def allreduce(self, buf, op):
            buf[3] += 0.0  # the other rank was not asked to stop either
            stop.requested = True  # ... and now the Ctrl-C lands here, after the sum

    par = Parallel(World())
    pos = SimpleNamespace(errors=0, loss_sum=0.0, seen=0)
    assert par.sync_step(pos, stop) is False  # both ranks go on to the next step
    assert stop.requested  # and the request is kept for that step's Allreduce
    assert par.sync_step(pos, stop) is True
