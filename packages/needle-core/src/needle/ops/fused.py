"""Fused ops for the layers that dominate training time: linear, batch-norm, softmax loss.

Each is one graph node instead of ten, which is most of what makes small-batch
training fast in Python. Their gradients have two forms:

* ``vjp`` (what ``backward()`` uses): the formula straight on backend arrays;
* ``gradient`` (``backward(create_graph=True)``): the same formula written in
  differentiable Tensor ops, so higher-order gradients stay correct.
"""

from __future__ import annotations

from typing import Any

from ..autograd import NeedleError, Tensor, TensorOp


def _const(like: Tensor, data: Any) -> Tensor:
    return Tensor.make_const(data, device=like.device)


class Linear(TensorOp):
    """x @ W + b, with x (..., in), W (in, out) and b broadcastable to (..., out)."""

    def compute(self, x, w, b=None):
        return self.backend.linear(x, w, b)

    def check(self, x, w, b=None):
        if x.shape[-1:] != w.shape[:1]:
            raise NeedleError(f"linear: input of shape {x.shape} has {x.shape[-1]} features but "
                              f"the weight of shape {w.shape} expects {w.shape[0]}")

    def gradient(self, g, node):
        x, w = node.inputs[:2]
        b = node.inputs[2] if len(node.inputs) > 2 else None
        gx = matmul(g, transpose(w)) if x.requires_grad else None
        gw = sum_to_shape(matmul(transpose(x), g), w.shape)
        gb = sum_to_shape(g, b.shape) if b is not None else None
        return gx, gw, gb

    def vjp(self, g, node):
        x, w = node.inputs[:2]
        b = node.inputs[2] if len(node.inputs) > 2 else None
        bk, xd = self.backend, x._array
        gx = bk.matmul(g, bk.transpose(w._array, (1, 0))) if x.requires_grad else None
        if g.ndim != 2:  # (..., out): the leading axes are all batch
            xd = bk.reshape(xd, (-1, xd.shape[-1]))
            g = bk.reshape(g, (-1, g.shape[-1]))
        gw = bk.matmul(bk.transpose(xd, (1, 0)), g)
        gb = None
        if b is not None and b.requires_grad:
            gb = bk.reshape(bk.sum(g, (0,), keepdims=True), b.shape)
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight + bias`` as one op (the bias broadcasts over leading axes)."""
    return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)


class BatchNorm(TensorOp):
    """Training-mode batch normalisation of (N, D) input over the batch axis.

    y = (x − mean) / sqrt(var + eps) · weight + bias with the batch's biased
    variance. Running statistics (backend arrays), when given, are updated in place
    by the same kernel. Only what the backward pass needs stays on the op.
    """

    def __init__(self, eps: float = 1e-5, running_mean: Any = None, running_var: Any = None,
                 momentum: float = 0.1) -> None:
        self.eps = eps
        self.running = (running_mean, running_var, momentum)

    def compute(self, x, weight, bias):
        y, _, _, self.x_hat, self.inv_std = \
            self.backend.batch_norm(x, weight, bias, self.eps, *self.running)
        return y

    def check(self, x, weight, bias):
        if x.ndim != 2 or weight.size != x.shape[1] or bias.size != x.shape[1]:
            raise NeedleError(f"batch_norm: expected input (N, D) with weight and bias of D "
                              f"elements, got {x.shape}, {weight.shape}, {bias.shape}")

    def vjp(self, g, node):
        x, weight, bias = node.inputs
        bk = self.backend
        dx, g_weight, g_bias = bk.batch_norm_backward(g, self.x_hat, self.inv_std,
                                                      weight._array)
        return (dx if x.requires_grad else None, bk.reshape(g_weight, weight.shape),
                bk.reshape(g_bias, bias.shape))

    def gradient(self, g, node):
        x, weight, bias = node.inputs
        n, d = x.shape
        x_hat = _const(g, self.x_hat)
        inv_std = _const(g, self.inv_std)
        w = broadcast_to(reshape(weight, (1, d)), x.shape)
        g_hat = g * w
        s1 = broadcast_to(summation(g_hat, (0,), keepdims=True), x.shape)
        s2 = broadcast_to(summation(g_hat * x_hat, (0,), keepdims=True), x.shape)
        dx = (g_hat * n - s1 - x_hat * s2) * broadcast_to(inv_std / n, x.shape)
        g_weight = reshape(summation(g * x_hat, (0,)), weight.shape)
        g_bias = reshape(summation(g, (0,)), bias.shape)
        return dx, g_weight, g_bias


def batch_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    return BatchNorm(eps)(x, weight, bias)


class SoftmaxCrossEntropy(TensorOp):
    """Mean over the batch of logsumexp(z) − z[label]: the course's softmax loss, fused.

    ``labels`` holds integer class ids (any dtype); it gets no gradient. The backend
    returns the gradient (softmax − onehot) / N with the loss, so backward is one multiply.
    """

    same_dtype = False

    def compute(self, logits, labels):
        bk = self.backend
        self.labels = bk.astype(labels, "int64")
        # Both bounds in one reduction: as unsigned, negative ids become huge. Why check at
        # all: NumPy would index from the end for negatives and CuPy wraps every id out of
        # range, both silently. On a GPU this reads one number back, once per loss.
        if logits.shape[0] and \
                float(bk.max(bk.astype(self.labels, "uint64"))) >= logits.shape[1]:
            raise NeedleError(self._label_error(logits.shape[1]))
        loss, self.dlogits = bk.softmax_cross_entropy(logits, self.labels)
        return loss

    def check(self, logits, labels):
        if logits.ndim != 2 or labels.shape != (logits.shape[0],):
            raise NeedleError(f"softmax_cross_entropy: expected logits (N, C) and labels (N,), "
                              f"got {logits.shape} and {labels.shape}")
        values = labels.numpy()
        if values.size and (values.min() < 0 or values.max() >= logits.shape[1]):
            raise NeedleError(self._label_error(logits.shape[1]))

    @staticmethod
    def _label_error(k: int) -> str:
        return f"softmax_cross_entropy: labels are class ids, and class ids must lie in [0, {k})"

    def gradient(self, g, node):
        logits = node.inputs[0]
        n, k = logits.shape
        # the softmax as an op of every logit (second derivatives must see that), from
        # max-shifted exponentials so large logits keep their digits
        softmax = shifted_softmax(logits, (1,))
        one_hot = _const(g, self.backend.one_hot(k, self.labels, logits.dtype))
        return (softmax - one_hot) * broadcast_to(reshape(g / n, (1, 1)), logits.shape), None

    def vjp(self, g, node):
        return self.backend.multiply(self.dlogits, g), None  # a new array: dlogits is kept


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return SoftmaxCrossEntropy()(logits, labels)


from .mathematic import matmul, sum_to_shape  # noqa: E402
from .reduce import shifted_softmax, summation  # noqa: E402
from .shape import broadcast_to, reshape, transpose  # noqa: E402
