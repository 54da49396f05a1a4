"""The seed notes' memory bug: updates must not grow a graph. Proved by counting live
tensors (``needle.autograd.TENSOR_COUNTER``) and weak references, never by timing.

The garbage collector is disabled while measuring, so the counts also prove that no
reference cycle keeps tensors alive until a later collection.
"""

from __future__ import annotations

import gc
import weakref

import needle as ndl
import needle.autograd as autograd
import numpy as np
import pytest


@pytest.fixture
def no_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def live() -> int:
    return autograd.TENSOR_COUNTER


def test_counter_tracks_live_tensors(device, no_gc):
    before = live()
    xs = [ndl.Tensor([1.0], device=device) for _ in range(5)]
    assert live() == before + 5
    del xs
    assert live() == before


def test_loop_over_constants_keeps_a_bounded_number_of_tensors(device, no_gc):
    lr = 0.1
    w = ndl.Tensor(np.ones(10), device=device, requires_grad=False)
    grad = ndl.Tensor(np.full(10, 0.5), device=device, requires_grad=False)
    first = weakref.ref(w)
    w = w + (-lr) * grad
    assert first() is None  # the first w is gone: nothing links to it
    base = live()
    for i in range(1000):
        w = w + (-lr) * grad
        if i % 100 == 0:  # each count scans the collector's objects: milliseconds
            assert live() == base
    assert live() == base
    assert w.op is None and w.inputs == ()
    np.testing.assert_allclose(w.numpy(), 1 - 1001 * 0.05, rtol=1e-4)


def test_data_update_links_no_graph(device, no_gc):
    lr = 0.1
    w = ndl.Tensor(np.ones(4), device=device)  # a parameter: requires grad
    grad = ndl.Tensor(np.full(4, 2.0), device=device)
    base = live()
    for _ in range(100):
        w.data = w.data - lr * grad.data
        assert w.op is None and w.inputs == () and w.requires_grad
    assert live() == base
    np.testing.assert_allclose(w.numpy(), 1 - 100 * 0.2, rtol=1e-5)


def test_training_loop_keeps_the_tensor_count_flat(device, no_gc):
    rng = np.random.default_rng(0)
    x = ndl.Tensor(rng.standard_normal((16, 5)), device=device, requires_grad=False)
    y = ndl.Tensor(rng.standard_normal((16, 1)), device=device, requires_grad=False)
    w = ndl.Tensor(rng.standard_normal((5, 1)) * 0.1, device=device)
    b = ndl.Tensor(np.zeros((1,)), device=device)
    graph_nodes: list[weakref.ref] = []

    def step() -> float:
        pred = (x @ w + b.broadcast_to((16, 1))).tanh()
        loss = ((pred - y) ** 2).sum() / 16
        graph_nodes.append(weakref.ref(pred))
        loss.backward()
        for p in (w, b):
            p.data = p.data - 0.1 * p.grad.data
            p.grad = None
        return loss.item()

    losses = [step() for _ in range(3)]
    base = live()
    losses += [step() for _ in range(50)]
    assert live() == base
    assert all(ref() is None for ref in graph_nodes)  # every iteration's graph was freed
    assert losses[-1] < losses[0]  # and it did train
    assert w.op is None and b.op is None


def test_backward_frees_nothing_it_should_keep_and_keeps_nothing_extra(device, no_gc):
    x = ndl.Tensor(np.ones(3), device=device)
    base = live()
    loss = (x * 2).exp().sum()
    loss.backward()
    del loss
    assert live() == base + 1  # only x.grad remains
    x.grad = None
    assert live() == base
