"""Which processes train together: MPI's world when started by a launcher, else a world of one.

mpi4py is imported only when a launcher (``mpiexec``, ``mpirun``, ``srun``) started
this process, so ``import needle`` and a script run alone never need MPI (and never
pay the second MPI takes to start). A launcher is recognised by the variables it
sets; ``NEEDLE_DISTRIBUTED=mpi`` forces MPI, ``NEEDLE_DISTRIBUTED=none`` a world of one.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

import numpy as np

#: Variables that launchers set to the number of processes they started.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
#: Variables that only exist inside a launched process (the size may not be given).
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")
INSTALL_HINT = "pip install 'needle-nn[mpi]' (mpi4py and an MPICH build)"


class DistributedError(RuntimeError):
    """A data-parallel run cannot start or its ranks disagree (shapes, dtypes, devices)."""


class World:
    """A world of one process: every collective leaves its data as it is."""

    size = 1
    rank = 0
    local_rank = 0
    library = "none (a single process)"

    def allreduce(self, buf: np.ndarray, op: str) -> None:
        """Reduce the contiguous host array ``buf`` over all ranks, in place."""

    def bcast(self, buf: np.ndarray, root: int) -> None:
        """Overwrite the contiguous host array ``buf`` with root's, in place."""

    def allgather(self, value: np.ndarray) -> np.ndarray:
        """Stack every rank's equally shaped ``value`` (rank order) along a new first axis."""
        return value[None].copy()

    def barrier(self) -> None:
        """Wait until every rank reaches this point."""

    def all_reach(self, seconds: float) -> bool:
        """Whether every rank reaches this point within ``seconds``.

        A failure that every rank shares (a bad argument, a missing file) can then end
        the job with a normal exit, which keeps its message; an abort may lose it."""
        return True

    def abort(self, code: int) -> None:
        """End every rank of the job at once with exit status ``code``."""
        os._exit(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank {self.rank} of {self.size}, {self.library})"


class MPIWorld(World):
    """``MPI.COMM_WORLD`` through mpi4py's buffer interface (no pickling)."""

    def __init__(self, mpi: Any) -> None:
        self.MPI = mpi
        self.comm = mpi.COMM_WORLD
        self.size, self.rank = self.comm.Get_size(), self.comm.Get_rank()
        self.local_rank = self.comm.Split_type(mpi.COMM_TYPE_SHARED).Get_rank()
        self.library = " ".join(mpi.Get_library_version().split()[:3])
        self.ops = {"sum": mpi.SUM, "max": mpi.MAX, "min": mpi.MIN}
        # all_reach waits on a communicator of its own, so a rank waiting there can never
        # be matched with another rank's collective on COMM_WORLD
        self.failures = self.comm.Dup()

    def allreduce(self, buf: np.ndarray, op: str) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.ops[op])

    def bcast(self, buf: np.ndarray, root: int) -> None:
        self.comm.Bcast(buf, root=root)

    def allgather(self, value: np.ndarray) -> np.ndarray:
        out = np.empty((self.size, *value.shape), value.dtype)
        self.comm.Allgather(np.ascontiguousarray(value), out)
        return out

    def barrier(self) -> None:
        self.comm.Barrier()

    def all_reach(self, seconds: float) -> bool:
        request = self.failures.Ibarrier()
        deadline = time.monotonic() + seconds
        while not request.Test():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def abort(self, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # the launcher forwards output on its own schedule: a moment lets the last lines
        # through before Abort tears the job down
        time.sleep(0.5)
        self.comm.Abort(code)
        os._exit(code)  # MPICH's Abort can return before the launcher ends this process


_world: World | None = None


def launcher_size() -> int | None:
    """How many processes the launcher says it started, ``None`` when none started this one."""
    for name in SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    if any(name in os.environ for name in RANK_VARIABLES):
        return 0  # launched, size not told
    return None


def init() -> World:
    """Join the MPI world when a launcher started this process, else a world of one.

    Safe to call again (it returns the same world). Raises ``DistributedError`` when
    a launcher started several processes but they cannot form one world (mpi4py
    missing, or an ``mpiexec`` of another MPI than mpi4py's): running them as
    separate trainings would silently give a wrong result.
    """
    global _world
    if _world is not None:
        return _world
    mode = os.environ.get("NEEDLE_DISTRIBUTED", "auto").lower()
    if mode not in ("auto", "mpi", "none"):
        raise DistributedError(f"NEEDLE_DISTRIBUTED={mode!r}: expected auto, mpi or none")
    size = launcher_size()
    if mode == "none" or (mode == "auto" and size is None) or (size == 1 and not _imported()):
        _world = World()
        return _world
    try:
        from mpi4py import MPI
    except ImportError as exc:
        why = "NEEDLE_DISTRIBUTED=mpi" if size is None else \
            f"this process was started by an MPI launcher ({size or 'some'} processes)"
        raise DistributedError(f"{why} but mpi4py cannot be imported ({exc}): "
                               f"{INSTALL_HINT}") from exc
    world = MPIWorld(MPI)
    _check_launch(world, size)
    if world.size > 1:
        _abort_on_uncaught_exception(world)
    _world = world
    return world


def current() -> World:
    """The world ``init()`` joined (joining it now if needed)."""
    return _world if _world is not None else init()


def _imported() -> bool:
    return "mpi4py.MPI" in sys.modules


def _check_launch(world: World, size: int | None) -> None:
    """A launcher's N processes that each see a world of one are N separate runs: refuse."""
    tasks = os.environ.get("SLURM_NTASKS", "") if "SLURM_STEP_ID" in os.environ else ""
    expected = size or (int(tasks) if tasks.isdigit() else 0)
    if expected > 1 and world.size != expected:
        hint = ("srun needs an MPI plugin that this MPI understands (srun --mpi=pmi2 or "
                "--mpi=pmix)" if tasks else "start it with the mpiexec of the MPI mpi4py uses "
                "(for the mpich wheel: the mpiexec installed beside this Python)")
        raise DistributedError(f"the launcher started {expected} processes but MPI "
                               f"({world.library}) sees a world of {world.size}: {hint}")


def _abort_on_uncaught_exception(world: World) -> None:
    """One rank's uncaught exception ends the job: the others would wait in a collective
    forever (what ``python -m mpi4py`` does)."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        try:
            previous(kind, exc, tb)
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - never let reporting stop the abort
            traceback.print_exception(kind, exc, tb)
        world.abort(1)

    sys.excepthook = hook
