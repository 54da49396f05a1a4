"""``needle train`` on several processes: ``mpiexec -n N needle train ...`` or ``--nproc N``.

Every rank trains on its own shard of each epoch (``DistributedSampler``) with the
gradients averaged before every step (``DistributedOptimizer``), so ``--batch-size``
is per rank and the global batch is N times it. Rank 0 alone prints, evaluates and
writes the run directory; the others only train. After each step one small
``Allreduce`` adds up the step's loss, errors and examples over the ranks and any
Ctrl-C request, so the position saved by rank 0 holds the whole job's numbers and
every rank stops after the same step. A rank that fails ends the whole job.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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

    def setup(self, run: Any) -> None:
        """Same weights everywhere, averaged gradients, and this rank's shard of the data."""
        if self.size == 1:
            return
        from .loop import ImageTask
        if not isinstance(run.task, ImageTask):
            raise CLIError(f"--model {run.cfg.model} cannot train on several processes yet "
                           f"(data-parallel runs take the image models: mlp-resnet, resnet9)")
        dist.broadcast_parameters(run.model)
        run.opt = dist.DistributedOptimizer(run.opt, self.world)
        task = run.task
        try:
            self.sampler = dist.DistributedSampler(task.images.train, shuffle=True,
                                                   seed=run.cfg.seed, num_replicas=self.size,
                                                   rank=self.rank)
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        task.loader = data.DataLoader(task.images.train, task.batch_size, sampler=self.sampler,
                                      device=task.device)
        task.batches_per_epoch = len(task.loader)

    def before_epoch(self, run: Any) -> None:
        """This epoch's shard; a resumed epoch continues in this rank's own order."""
        if self.sampler is None:
            return
        self.sampler.set_epoch(run.epoch)
        if run.pos is not None:
            run.pos.order = self.sampler.indices()
        pos = run.pos
        self._last = (pos.errors, pos.loss_sum, pos.seen) if pos is not None else (0, 0.0, 0)

    def sync_step(self, pos: Any, stop: Any) -> None:
        """Make ``pos`` the job's totals (one ``Allreduce``), and agree on stopping."""
        if self.size == 1:
            return
        errors, loss_sum, seen = self._last
        step = np.array([pos.errors - errors, pos.loss_sum - loss_sum, pos.seen - seen,
                         float(stop.requested)], np.float64)
        self.world.allreduce(step, "sum")
        pos.errors, pos.loss_sum, pos.seen = (errors + int(step[0]), loss_sum + float(step[1]),
                                              seen + int(step[2]))
        self._last = (pos.errors, pos.loss_sum, pos.seen)
        if step[3] > 0:
            stop.requested = True

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


def together(prog: str, body: Callable[[Parallel], int]) -> int:
    """Run ``body`` on this rank; on a failure (or a rank's non-zero exit) end every rank.

    Alone this is just ``body``. On several ranks a rank that fails while the others
    wait in a collective must take the job down, or it would hang: the error is
    printed (by rank 0 when every rank fails alike) and ``MPI_Abort`` ends them all.
    """
    par = Parallel.join()
    if par.size == 1:
        return body(par)
    try:
        status = body(par)
    except CLIError as exc:
        if not par.main:
            time.sleep(5.0)  # when every rank fails alike, rank 0's line is the one shown
        where = f" (rank {par.rank} of {par.size})" if not par.main else ""
        print(f"{prog}: error{where}: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
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
