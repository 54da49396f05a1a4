"""A hand-written NumPy MLP-ResNet: forward, backward, Adam and SGD, in float32.

It is the yardstick for "the practical limit of this machine": the same network,
data and optimizer maths as needle and PyTorch run, with no framework in the way
(no graph, no dispatch), written the way a careful person would by hand: one
matrix product per layer and direction, fused batch-norm backward, in-place
updates. ``self_check`` proves its gradients right before anyone trusts its speed.

Layout (the course's ``MLPResNet``): Linear(dim, hidden), ReLU, ``blocks`` x
[Residual(Linear(hidden, hidden//2), BN, ReLU, Dropout, Linear(hidden//2, hidden), BN), ReLU],
Linear(hidden, classes); loss = mean softmax cross-entropy. Weights are (in, out).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BN_EPS = 1e-5
BN_MOMENTUM = 0.1


def init_params(dim: int, hidden: int, blocks: int, classes: int, seed: int = 0,
                dtype: Any = np.float32) -> list[np.ndarray]:
    """Course initialisation: kaiming-uniform weights and biases, BN scale 1 and shift 0.

    Order: W0, b0, then per block W1, b1, g1, beta1, W2, b2, g2, beta2, then W_out, b_out.
    """
    rng = np.random.default_rng(seed)

    def linear(fan_in: int, fan_out: int) -> list[np.ndarray]:
        w = rng.uniform(-1, 1, (fan_in, fan_out)) * np.sqrt(6 / fan_in)
        b = rng.uniform(-1, 1, fan_out) * np.sqrt(6 / fan_out)
        return [w.astype(dtype), b.astype(dtype)]

    half = hidden // 2
    params = linear(dim, hidden)
    for _ in range(blocks):
        params += linear(hidden, half) + [np.ones(half, dtype), np.zeros(half, dtype)]
        params += linear(half, hidden) + [np.ones(hidden, dtype), np.zeros(hidden, dtype)]
    return params + linear(hidden, classes)


class NumpyMLPResNet:
    """Parameters as a flat list (see ``init_params``); ``loss_and_grads`` trains one batch."""

    def __init__(self, params: list[np.ndarray], drop_prob: float = 0.1, seed: int = 0) -> None:
        if (len(params) - 4) % 8:
            raise ValueError(f"expected 4 + 8*blocks parameter arrays, got {len(params)}")
        self.params = params
        self.blocks = (len(params) - 4) // 8
        self.drop_prob = drop_prob
        self.rng = np.random.default_rng(seed)
        widths = [params[2 + 8 * k + j].shape[0] for k in range(self.blocks) for j in (2, 6)]
        self.running = [[np.zeros(w, params[0].dtype), np.ones(w, params[0].dtype)] for w in widths]

    @classmethod
    def create(cls, dim: int = 784, hidden: int = 100, blocks: int = 3, classes: int = 10,
               drop_prob: float = 0.1, seed: int = 0, dtype: Any = np.float32) -> NumpyMLPResNet:
        return cls(init_params(dim, hidden, blocks, classes, seed, dtype), drop_prob, seed)

    # -- batch norm (training mode) --------------------------------------------
    def _bn(self, z: np.ndarray, g: np.ndarray, beta: np.ndarray, i: int):
        mean = z.mean(axis=0)
        xhat = z - mean
        var = np.square(xhat).mean(axis=0)
        inv = 1 / np.sqrt(var + BN_EPS)
        xhat *= inv
        rm, rv = self.running[i]
        rm *= 1 - BN_MOMENTUM
        rm += BN_MOMENTUM * mean
        rv *= 1 - BN_MOMENTUM
        rv += BN_MOMENTUM * var  # biased variance, as the course's BatchNorm1d keeps it
        return xhat * g + beta, (xhat, inv, g)

    @staticmethod
    def _bn_backward(dout: np.ndarray, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xhat, inv, g = cache
        n = dout.shape[0]
        dbeta = dout.sum(axis=0)
        dg = (dout * xhat).sum(axis=0)
        # dz = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dout * g
        dz = dout - dbeta / n
        dz -= xhat * (dg / n)
        dz *= g * inv
        return dz, dg, dbeta

    # -- one training batch -------------------------------------------------------
    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Forward in training mode (batch statistics, dropout), then backward."""
        p = self.params
        n = x.shape[0]
        keep = 1.0 - self.drop_prob
        a0 = x @ p[0]
        a0 += p[1]
        np.maximum(a0, 0, out=a0)
        a = a0
        caches = []
        for k in range(self.blocks):
            w1, b1, g1, be1, w2, b2, g2, be2 = p[2 + 8 * k:10 + 8 * k]
            z1 = a @ w1
            z1 += b1
            r1, bn1 = self._bn(z1, g1, be1, 2 * k)
            np.maximum(r1, 0, out=r1)
            mask = None
            d1 = r1
            if self.drop_prob > 0:
                mask = self.rng.random(r1.shape, dtype=r1.dtype) < keep
                mask = mask.astype(r1.dtype)
                mask *= 1 / keep
                d1 = r1 * mask
            z2 = d1 @ w2
            z2 += b2
            out, bn2 = self._bn(z2, g2, be2, 2 * k + 1)
            out += a
            np.maximum(out, 0, out=out)
            caches.append((a, r1, mask, d1, bn1, bn2, out))
            a = out
        logits = a @ p[-2]
        logits += p[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, y]))

        grads: list[np.ndarray] = [None] * len(p)  # type: ignore[list-item]
        dlogits = exp
        dlogits /= total
        dlogits[rows, y] -= 1
        dlogits /= n
        grads[-2] = a.T @ dlogits
        grads[-1] = dlogits.sum(axis=0)
        da = dlogits @ p[-2].T
        for k in reversed(range(self.blocks)):
            a_in, r1, mask, d1, bn1, bn2, out = caches[k]
            da *= out > 0
            dz2, dg2, dbe2 = self._bn_backward(da, bn2)
            w1, w2 = p[2 + 8 * k], p[6 + 8 * k]
            dd1 = dz2 @ w2.T
            if mask is not None:
                dd1 *= mask
            dd1 *= r1 > 0
            dz1, dg1, dbe1 = self._bn_backward(dd1, bn1)
            grads[2 + 8 * k:10 + 8 * k] = [a_in.T @ dz1, dz1.sum(axis=0), dg1, dbe1,
                                           d1.T @ dz2, dz2.sum(axis=0), dg2, dbe2]
            da_in = dz1 @ w1.T
            da_in += da  # the residual path
            da = da_in
        da *= a0 > 0
        grads[0] = x.T @ da
        grads[1] = da.sum(axis=0)
        return loss, grads


class NumpyAdam:
    """The course's Adam (L2 weight decay added to the gradient, bias-corrected moments)."""

    def __init__(self, params: list[np.ndarray], lr: float = 0.001, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.params, self.lr, self.beta1, self.beta2 = params, lr, beta1, beta2
        self.eps, self.weight_decay, self.t = eps, weight_decay, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1 - b1 ** self.t)
        root_bc2 = np.sqrt(1 - b2 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            if self.weight_decay:
                g = g + self.weight_decay * p
            m *= b1
            m += (1 - b1) * g
            v *= b2
            sq = np.square(g)
            sq *= 1 - b2
            v += sq
            denom = np.sqrt(v)
            denom /= root_bc2
            denom += self.eps
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom


class NumpySGD:
    """The course's SGD: u = momentum * u + (1 - momentum) * (g + wd * p); p -= lr * u."""

    def __init__(self, params: list[np.ndarray], lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        self.params, self.lr, self.momentum, self.weight_decay = params, lr, momentum, weight_decay
        self.u = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        for p, g, u in zip(self.params, grads, self.u):
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                u *= self.momentum
                u += (1 - self.momentum) * g
                g = u
            p -= self.lr * g


# -- self-check ----------------------------------------------------------------------
def _finite_difference_error(drop_prob: float, seed: int = 3) -> float:
    """Largest relative error of the analytic gradient against central differences (float64)."""
    rng = np.random.default_rng(seed)
    n, dim, classes = 7, 6, 3
    x = rng.standard_normal((n, dim))
    y = rng.integers(0, classes, n)
    model = NumpyMLPResNet.create(dim, hidden=8, blocks=2, classes=classes,
                                  drop_prob=drop_prob, seed=seed, dtype=np.float64)

    def loss_and_grads() -> tuple[float, list[np.ndarray]]:
        model.rng = np.random.default_rng(seed)  # the same dropout mask every call
        return model.loss_and_grads(x, y)

    _, grads = loss_and_grads()
    worst, h = 0.0, 1e-6
    for p, g in zip(model.params, grads):
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            up, _ = loss_and_grads()
            p[idx] = old - h
            down, _ = loss_and_grads()
            p[idx] = old
            numeric = (up - down) / (2 * h)
            worst = max(worst, abs(numeric - g[idx]) / max(1e-3, abs(numeric) + abs(g[idx])))
    return worst


def _torch_difference(torch: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Largest relative gradient difference against PyTorch autograd, same weights (float64)."""
    import torch_model

    params = init_params(x.shape[1], 100, 3, 10, seed=1, dtype=np.float64)
    ours = NumpyMLPResNet([p.copy() for p in params], drop_prob=0.0)
    loss, grads = ours.loss_and_grads(x.astype(np.float64), y)
    net = torch_model.build(torch, x.shape[1], 100, 3, 10, drop_prob=0.0, params=params,
                            dtype=torch.float64)
    out = torch.nn.functional.cross_entropy(net(torch.from_numpy(x.astype(np.float64))),
                                            torch.from_numpy(y))
    out.backward()
    theirs = torch_model.grads_in_numpy_order(net)
    worst = abs(loss - out.item()) / abs(out.item())
    for g, t in zip(grads, theirs):
        # Biases before a batch norm have zero gradient (rounding noise on both sides).
        worst = max(worst, float(np.abs(g - t).max() / max(np.abs(t).max(), 1e-6)))
    return worst


def self_check(torch: Any | None = None, x: np.ndarray | None = None,
               y: np.ndarray | None = None) -> dict[str, float]:
    """Raise if the hand-written gradients are wrong; return the errors found."""
    errors = {"finite_difference": max(_finite_difference_error(0.0),
                                       _finite_difference_error(0.3))}
    if errors["finite_difference"] > 1e-5:
        raise AssertionError(f"NumPy MLP-ResNet gradients disagree with finite differences: "
                             f"relative error {errors['finite_difference']:.3g}")
    if torch is not None and x is not None and y is not None:
        errors["torch"] = _torch_difference(torch, x, y)
        if errors["torch"] > 1e-7:
            raise AssertionError(f"NumPy MLP-ResNet gradients disagree with PyTorch: "
                                 f"relative error {errors['torch']:.3g}")
    return errors
