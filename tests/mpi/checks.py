"""Run by tests/test_distributed.py as ``mpiexec -n 2 python tests/mpi/checks.py [DEVICE]``.

Rank 0 prints ``PASS <name>`` for each check that held on every rank; a failed
check raises, which ends the whole job with a non-zero exit (the test prints why).
With ``cuda`` the collectives and optimizer checks run on GPU tensors (NCCL, or
host copies with ``NEEDLE_NCCL=0``).
"""

from __future__ import annotations

import os
import sys

import needle as ndl
import needle.distributed as dist
import numpy as np

B, STEPS, FEATURES, CLASSES = 8, 6, 5, 3
DEV = ndl.cpu()


def passed(name: str) -> None:
    dist.barrier()
    if dist.is_main():
        print(f"PASS {name}", flush=True)


def mlp() -> ndl.nn.Module:
    return ndl.nn.Sequential(ndl.nn.Linear(FEATURES, 16, device=DEV), ndl.nn.ReLU(),
                             ndl.nn.Linear(16, CLASSES, device=DEV))


def train(model, opt, x, y, batch) -> None:
    loss_fn = ndl.nn.SoftmaxLoss()
    for s in range(STEPS):
        rows = slice(s * batch, (s + 1) * batch)
        opt.reset_grad()
        loss_fn(model(ndl.Tensor(x[rows], device=DEV)),
                ndl.Tensor(y[rows], device=DEV)).backward()
        opt.step()


def check_equals_one_big_batch(name: str, make_opt) -> None:
    """N ranks, batch B each == one process, batch N*B (rank r takes rows r*B.. of each step)."""
    n, r = dist.world_size(), dist.rank()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((STEPS * n * B, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, STEPS * n * B)
    ndl.manual_seed(100 + r)  # every rank draws other weights: broadcast_parameters fixes that
    model = mlp()
    dist.broadcast_parameters(model)
    start = [p.numpy().copy() for p in model.parameters()]
    opt = dist.DistributedOptimizer(make_opt(model.parameters()))
    mine = np.concatenate([np.arange(s * n * B + r * B, s * n * B + (r + 1) * B)
                           for s in range(STEPS)])
    train(model, opt, x[mine], y[mine], B)
    got = [p.numpy() for p in model.parameters()]
    for p in got:  # every rank holds the same weights
        same = dist.broadcast(ndl.Tensor(p, device=DEV), 0).numpy()
        np.testing.assert_array_equal(p, same)
    if dist.is_main():
        ref = mlp()
        for p, w in zip(ref.parameters(), start):
            p.data = ndl.Tensor(w, device=DEV)
        train(ref, make_opt(ref.parameters()), x, y, n * B)
        for a, b, w in zip(got, ref.parameters(), start):
            np.testing.assert_allclose(a, b.numpy(), rtol=2e-5, atol=2e-6)
            assert np.abs(a - w).max() > 1e-3  # the steps moved every weight
    passed(name)


def check_collectives() -> None:
    n, r = dist.world_size(), dist.rank()
    x = ndl.Tensor(np.arange(6, dtype="float32").reshape(2, 3) * (r + 1), device=DEV)
    assert dist.all_reduce(x).device == DEV
    total = sum(k + 1 for k in range(n))
    np.testing.assert_array_equal(dist.all_reduce(x).numpy(), np.arange(6).reshape(2, 3) * total)
    np.testing.assert_allclose(dist.all_reduce(x, "mean").numpy(),
                               np.arange(6).reshape(2, 3) * total / n)
    np.testing.assert_array_equal(dist.all_reduce(x, "max").numpy(), np.arange(6).reshape(2, 3) * n)
    np.testing.assert_array_equal(x.numpy(), np.arange(6).reshape(2, 3) * (r + 1))  # untouched
    ints = ndl.Tensor(np.array([r, 10], dtype="int64"), dtype="int64", device=DEV)
    summed = dist.all_reduce(ints)
    assert summed.dtype == np.int64 and summed.numpy().tolist() == [n * (n - 1) // 2, 10 * n]
    for root in range(n):
        got = dist.broadcast(ndl.Tensor(np.full(4, float(r), "float64"), dtype="float64",
                                        device=DEV), root)
        assert got.dtype == np.float64 and got.numpy().tolist() == [float(root)] * 4
    scalar = dist.all_reduce(ndl.Tensor(np.float32(r + 1), device=DEV))
    assert scalar.shape == () and float(scalar.numpy()) == total
    assert dist.broadcast_object({"path": f"runs/{r}"}, 1) == {"path": "runs/1"}
    try:  # a shape mismatch is the same error on every rank, not a hang
        dist.all_reduce(ndl.Tensor(np.ones(2 + r, "float32"), device=DEV))
    except dist.DistributedError as exc:
        assert "float32[2]" in str(exc) and "float32[3]" in str(exc), exc
    else:
        raise AssertionError("mismatched shapes were reduced")
    passed("collectives")


def check_buffers_and_missing_grads() -> None:
    r = dist.rank()
    ndl.manual_seed(r)
    bn = ndl.nn.BatchNorm1d(3)
    bn.running_mean.data = ndl.Tensor(np.full(3, float(r), "float32"))
    dist.broadcast_parameters(bn)
    assert bn.running_mean.numpy().tolist() == [0.0] * 3  # rank 0's statistics everywhere
    a = ndl.nn.Parameter(np.ones(2, "float32"))
    b = ndl.nn.Parameter(np.ones(2, "float32"))
    c = ndl.nn.Parameter(np.ones(2, "float32"))
    opt = dist.DistributedOptimizer(ndl.optim.SGD([a, b, c], lr=1.0))
    (a * float(r + 1)).sum().backward()  # a: a gradient on every rank
    if r == 0:
        (b * 4.0).sum().backward()  # b: only on rank 0; c: on none
    opt.average_gradients()
    n = dist.world_size()
    np.testing.assert_allclose(a.grad.numpy(), [sum(range(1, n + 1)) / n] * 2)
    np.testing.assert_allclose(b.grad.numpy(), [4.0 / n] * 2)
    assert c.grad is None
    passed("buffers-and-missing-grads")


def check_sampler() -> None:
    n = dist.world_size()
    data = list(range(23))
    sampler = dist.DistributedSampler(data, shuffle=True, seed=5)
    shards = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        mine = ndl.Tensor(sampler.indices().astype("int64"), dtype="int64")
        every = [dist.broadcast(mine, root).numpy() for root in range(n)]
        flat = np.concatenate(every)
        assert all(len(s) == 23 // n for s in every)
        assert len(set(flat.tolist())) == len(flat)  # disjoint
        assert len(flat) == 23 - 23 % n  # covering all but the remainder
        shards.append(flat)
        loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(np.arange(23.0)[:, None]), 4,
                                     sampler=sampler)
        got = np.concatenate([bx.numpy()[:, 0] for (bx,) in loader])
        np.testing.assert_array_equal(got, sampler.indices())
    assert not np.array_equal(shards[0], shards[1])  # a new order each epoch
    sampler.set_epoch(1, start=3)
    state = sampler.state_dict()
    again = dist.DistributedSampler(data, shuffle=True, seed=5)
    again.load_state_dict(state)
    np.testing.assert_array_equal(list(again), sampler.indices())
    assert len(again) == 23 // n - 3
    passed("sampler")


if __name__ == "__main__":
    world = dist.init()
    assert world.size > 1, f"expected several ranks, got {world}"
    if len(sys.argv) > 1:
        DEV = ndl.device(sys.argv[1])
        if DEV.name == "cuda" and os.environ.get("NEEDLE_NCCL") != "0":
            dist.nccl.init_cuda_device(world)  # NCCL needs a GPU per rank
    check_collectives()
    check_equals_one_big_batch("sgd-momentum", lambda ps: ndl.optim.SGD(ps, lr=0.1, momentum=0.9,
                                                                        weight_decay=1e-3))
    check_equals_one_big_batch("adam", lambda ps: ndl.optim.Adam(ps, lr=0.01, weight_decay=1e-3))
    if DEV.name == "cpu":
        check_buffers_and_missing_grads()
        check_sampler()
