"""Run by tests/test_distributed.py: one rank dies while the others wait in a collective.

``python dies.py kill`` kills rank 1 with SIGKILL; ``python dies.py raise`` lets it
raise. Either way ``mpiexec`` must end every rank and exit non-zero, never hang.
"""

from __future__ import annotations

import os
import signal
import sys

import needle as ndl
import needle.distributed as dist
import numpy as np

if __name__ == "__main__":
    dist.init()
    dist.barrier()
    if dist.rank() == 1:
        if sys.argv[1] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError("rank 1 gives up")
    dist.all_reduce(ndl.Tensor(np.ones(3, "float32")))  # waits for rank 1 forever
    print("rank 0 should never get here", flush=True)
