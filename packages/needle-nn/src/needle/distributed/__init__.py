"""needle.distributed: data-parallel training on MPI, with the same script alone or on N ranks.

Usage::

    import needle as ndl
    import needle.distributed as dist

    dist.init()                                   # MPI under mpiexec/srun, else a world of one
    model = ndl.nn.Linear(10, 2)
    dist.broadcast_parameters(model)              # every rank starts from rank 0's weights
    opt = dist.DistributedOptimizer(ndl.optim.SGD(model.parameters(), lr=0.1))
    sampler = dist.DistributedSampler(train_set, shuffle=True, seed=0)
    loader = ndl.data.DataLoader(train_set, batch_size=64, sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            opt.reset_grad(); loss_fn(model(x), y).backward(); opt.step()
    if dist.is_main():
        ndl.save(model.state_dict(), "model.npz")

Run it alone (``python train.py``), on 4 processes (``mpiexec -n 4 python train.py``)
or on a cluster (``srun python train.py``). Collectives on ``cuda`` tensors use NCCL
through CuPy when it has it, else MPI through host copies. The ``mpi`` extra
(``pip install "needle-nn[mpi]"``) brings mpi4py and an MPICH build; importing this
module never imports MPI, ``init()`` does, and only when a launcher started the process.
"""

from __future__ import annotations

from .collectives import all_reduce, broadcast, broadcast_object
from .modules import broadcast_parameters
from .optimizer import DistributedOptimizer
from .sampler import DistributedSampler
from .world import DistributedError, World, current, init


def rank() -> int:
    """This process's rank, 0 ... world_size() - 1."""
    return current().rank


def world_size() -> int:
    """How many processes train together (1 without a launcher)."""
    return current().size


def local_rank() -> int:
    """This process's rank among those on its machine (to pick its GPU)."""
    return current().local_rank


def is_main() -> bool:
    """True on rank 0, the one that prints and writes files."""
    return current().rank == 0


def barrier() -> None:
    """Wait until every rank gets here."""
    current().barrier()


__all__ = ["DistributedError", "DistributedOptimizer", "DistributedSampler", "World",
           "all_reduce", "barrier", "broadcast", "broadcast_object", "broadcast_parameters",
           "init", "is_main", "local_rank", "rank", "world_size"]
