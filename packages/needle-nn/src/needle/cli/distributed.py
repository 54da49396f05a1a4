"""``needle train`` on several processes: ``mpiexec -n N needle train ...`` or ``--nproc N``.

Every rank trains on its own shard of each epoch (``DistributedSampler``; for the
language model, its own B of the N·B columns of the token stream) with the
gradients averaged before every step (``DistributedOptimizer``), so ``--batch-size``
is per rank and the global batch is N times it. Rank 0 alone prints, evaluates and
writes the run directory; the others only train. After each step one small
``Allreduce`` adds up the step's loss, errors and examples over the ranks and any
Ctrl-C request, so the position saved by rank 0 holds the whole job's numbers and
every rank stops after the same step. A rank that fails ends the whole job.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from needle import Tensor

from .. import data
from .. import distributed as dist
from .options import CLIError

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class Parallel:
    """This process's part in a data-parallel run (a world of one when run alone)."""

    def __init__(self, world: dist.World) -> None:
        self.world = world
        self.size, self.rank = world.size, world.rank
        self.main = self.rank == 0
        self.sampler: dist.DistributedSampler | None = None
        self._last = (0, 0.0, 0)  # (errors, loss_sum, seen) of the position after the last sync
        self._columns, self._width = slice(None), 0  # a language model's columns here, of all

    @classmethod
    def join(cls) -> Parallel:
        try:
            return cls(dist.init())
        except dist.DistributedError as exc:
            raise CLIError(str(exc)) from exc

    def out_dir(self, choose: Callable[[], Path]) -> Path:
        """Rank 0 chooses (and checks) the run directory; every rank gets its choice."""
        path = choose() if self.main else None
        return Path(dist.broadcast_object(str(path) if path else None)) if self.size > 1 else path

    def check_resume(self, saved_processes: int | None, where: str) -> None:
        if (saved_processes or 1) != self.size:
            raise CLIError(f"{where}: this run trained on {saved_processes or 1} processes and "
                           f"continues only on as many (--batch-size is per process): start it "
                           f"with mpiexec -n {saved_processes or 1} or --nproc "
                           f"{saved_processes or 1}")

    def setup(self, run: Any, source: Any) -> None:
        """Same weights everywhere, averaged gradients, and this rank's shard of the data
        (``source``: the run's ``sources.Images`` or ``sources.Tokens``)."""
        if self.size == 1:
            return
        dist.broadcast_parameters(run.model)
        run.opt = dist.DistributedOptimizer(run.opt, self.world)
        task = run.task
        if hasattr(task, "bptt"):
            self._shard_text(task, source, run.cfg.batch_size)
            return
        try:
            self.sampler = dist.DistributedSampler(task.images.train, shuffle=True,
                                                   seed=run.cfg.seed, num_replicas=self.size,
                                                   rank=self.rank)
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        task.loader = data.DataLoader(task.images.train, task.batch_size, sampler=self.sampler,
                                      device=task.device)
        task.batches_per_epoch = len(task.loader)

    def _shard_text(self, task: Any, tokens: Any, batch_size: int) -> None:
        """The token stream in N·B columns, as one process with batch N·B lays it out;
        rank r trains on columns r·B ... (r+1)·B - 1 (their hidden state is its carry)."""
        try:
            every = data.batchify(tokens.train, batch_size * self.size)
        except data.DataError as exc:
            raise CLIError(f"{exc} (--batch-size {batch_size} on each of {self.size} "
                           f"processes)") from exc
        if every.shape[0] < 2:
            raise CLIError(f"{len(tokens.train)} training tokens are too few for --batch-size "
                           f"{batch_size} on {self.size} processes")
        mine = slice(self.rank * batch_size, (self.rank + 1) * batch_size)
        task.train = np.ascontiguousarray(every[:, mine])
        task.batches_per_epoch = len(range(0, task.train.shape[0] - 1, task.bptt))
        self._columns, self._width = mine, batch_size * self.size

    def gather(self, pos: Any) -> Any:
        """The job's position, to save: a language model's carry of every rank's columns
        joined along the batch axis, as one process would hold it (collective)."""
        if self.size == 1 or pos is None or pos.carry is None:
            return pos
        return dataclasses.replace(pos, carry=_map(pos.carry, self._gather_state))

    def _gather_state(self, t: Tensor) -> Tensor:
        every = self.world.allgather(np.ascontiguousarray(t.numpy()))
        return Tensor(np.concatenate(list(every), axis=1), device=t.device, dtype=t.dtype)

    def _own_columns(self, t: Tensor) -> Tensor:
        """This rank's columns of a saved (job-wide) hidden state; its own state as it is."""
        if t.shape[1] != self._width:
            return t
        return Tensor(t.numpy()[:, self._columns], device=t.device, dtype=t.dtype)

    def before_epoch(self, run: Any) -> None:
        """This epoch's shard; a resumed epoch continues in this rank's own order (and,
        for a language model, from the hidden state of its own columns)."""
        pos = run.pos
        if self.size > 1 and pos is not None and pos.carry is not None:
            pos.carry = _map(pos.carry, self._own_columns)
        if self.sampler is not None:
            self.sampler.set_epoch(run.epoch)
            if pos is not None:
                pos.order = self.sampler.indices()
        self._last = (pos.errors, pos.loss_sum, pos.seen) if pos is not None else (0, 0.0, 0)

    def sync_step(self, pos: Any, stop: Any) -> bool:
        """Make ``pos`` the job's totals (one ``Allreduce``), and agree on stopping: the
        result is the same on every rank (a Ctrl-C arriving later waits for the next step)."""
        asked = bool(stop())  # called once a step (a test's StopAfter counts the calls)
        if self.size == 1:
            return asked
        errors, loss_sum, seen = self._last
        step = np.array([pos.errors - errors, pos.loss_sum - loss_sum, pos.seen - seen,
                         float(asked)], np.float64)
        self.world.allreduce(step, "sum")
        pos.errors, pos.loss_sum, pos.seen = (errors + int(step[0]), loss_sum + float(step[1]),
                                              seen + int(step[2]))
        self._last = (pos.errors, pos.loss_sum, pos.seen)
        if step[3] > 0:
            stop.requested = True
        return bool(step[3] > 0)

    def agree_stop(self, stop: Any) -> bool:
        """Whether any rank was asked to stop (a Ctrl-C may reach one rank between steps)."""
        if self.size > 1:
            flag = np.array([float(stop.requested)])
            self.world.allreduce(flag, "max")
            stop.requested = bool(flag[0])
        return stop()

    def describe_batch(self, batch_size: int) -> str:
        if self.size == 1:
            return f"batch {batch_size}"
        return (f"batch {batch_size} per process x {self.size} processes = "
                f"{batch_size * self.size} global")


def _map(state: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``fn`` on every Tensor of a hidden state (a Tensor or a tuple of them)."""
    if isinstance(state, (tuple, list)):
        return tuple(_map(s, fn) for s in state)
    return fn(state) if isinstance(state, Tensor) else state


def together(prog: str, body: Callable[[Parallel], int]) -> int:
    """Run ``body`` on this rank; on a failure (or a rank's non-zero exit) end every rank.

    Alone this is just ``body``. On several ranks a rank that fails while the others
    wait in a collective must take the job down, or it would hang: it prints its error
    and ``MPI_Abort`` ends them all. When every rank fails (a usage error they share),
    rank 0 alone prints it and every rank exits normally, so the message is not lost.
    """
    par = Parallel.join()
    if par.size == 1:
        return body(par)
    try:
        status = body(par)
    except CLIError as exc:
        message = " ".join(str(exc).split())
        if par.world.all_reach(seconds=5.0):  # every rank failed: rank 0 says it, all exit
            if par.main:
                print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        print(f"{prog}: error (rank {par.rank} of {par.size}): {message}", file=sys.stderr,
              flush=True)
        par.world.abort(EXIT_USAGE)
        raise  # not reached: abort ends the process
    except KeyboardInterrupt:
        par.world.abort(EXIT_INTERRUPTED)
        raise
    if status not in (0, EXIT_INTERRUPTED):
        par.world.abort(status)
    return status


def launch(nproc: int, argv: list[str]) -> int | None:
    """``needle train --nproc N``: start ``mpiexec -n N`` on this machine, wait, return its
    exit status; ``None`` in the processes it started (they train).

    The children get the same arguments and recognise themselves by their launcher.
    Unless set, each child's BLAS uses cores/N threads, so N ranks do not fight over
    the cores.
    """
    size = dist.world.launcher_size()
    if size is not None:
        if size not in (0, nproc):
            raise CLIError(f"--nproc {nproc}, but this process was started by an MPI launcher "
                           f"with {size} processes: give one or the other")
        return None
    if importlib.util.find_spec("mpi4py") is None:
        raise CLIError(f"--nproc needs the mpi extra: {dist.world.INSTALL_HINT}")
    beside = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(beside) if beside.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        raise CLIError(f"--nproc needs an mpiexec (none beside {sys.executable} or on PATH): "
                       f"{dist.world.INSTALL_HINT}")
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, threads)
    cmd = [mpiexec, "-n", str(nproc), sys.executable, "-m", "needle.cli", *argv]
    proc = subprocess.Popen(cmd, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # mpiexec got the Ctrl-C too and passes it on: wait for it
            continue
