"""Fused ops for the layers that dominate training time: linear, batch-norm, softmax loss.

Each is one graph node instead of ten, which is most of what makes small-batch
training fast in Python. Like every op, each writes its derivative once
(``backward(xp, ...)``); where that calls a fused backend kernel
(``xp.batch_norm_backward``, the softmax loss's saved gradient), the Tensor world
(``create_graph=True``) runs a decomposition into Tensor ops instead, so higher-order
gradients stay correct (``needle.ops.gradmath``).
"""

from __future__ import annotations

from typing import Any

from ..autograd import NeedleError, Tensor, TensorOp


class Linear(TensorOp):
    """x @ W + b, with x (..., in), W (in, out) and b broadcastable to (..., out)."""

    def compute(self, x, w, b=None):
        return self.backend.linear(x, w, b)

    def check(self, x, w, b=None):
        if x.shape[-1:] != w.shape[:1]:
            raise NeedleError(f"linear: input of shape {x.shape} has {x.shape[-1]} features but "
                              f"the weight of shape {w.shape} expects {w.shape[0]}")

    def backward(self, xp, g, node):
        x, w = node.inputs[:2]
        xv, wv = xp.value(x), xp.value(w)
        gx = xp.matmul(g, xp.mT(wv)) if x.requires_grad else None
        if g.ndim != 2:  # (..., out): the leading axes are all batch
            xv = xp.reshape(xv, (-1, x.shape[-1]))
            g2 = xp.reshape(g, (-1, g.shape[-1]))
        else:
            g2 = g
        gw = xp.matmul(xp.mT(xv), g2) if w.requires_grad else None
        if len(node.inputs) == 2:
            return gx, gw
        b = node.inputs[2]._array
        if b.size != g2.shape[-1]:  # a wider bias, broadcast over some leading axes
            return gx, gw, xp.sum_to_shape(g, tuple(b.shape))
        return gx, gw, xp.reshape(xp.sum(g2, (0,)), b.shape)  # the usual (out,) bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight + bias`` as one op (the bias broadcasts over leading axes)."""
    return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)


class BatchNorm(TensorOp):
    """Training-mode batch normalisation of (N, D) input over the batch axis.

    y = (x − mean) / sqrt(var + eps) · weight + bias with the batch's biased
    variance. Running statistics (backend arrays), when given, are updated in place
    by the same kernel. Only what the backward pass needs stays on the op. Its function,
    with running statistics as Tensors and the eval form, is
    ``needle.ops.nn_functional.batch_norm``.
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

    def backward(self, xp, g, node):
        x, weight, bias = node.inputs
        dx, g_weight, g_bias = xp.batch_norm_backward(
            g, xp.const(x, self.x_hat), xp.const(x, self.inv_std), xp.value(weight))
        return (dx if x.requires_grad else None, xp.reshape(g_weight, weight.shape),
                xp.reshape(g_bias, bias.shape))


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

    def backward(self, xp, g, node):
        logits = node.inputs[0]
        if not xp.records:  # the kernel's (softmax − onehot) / N, kept from the forward
            return xp.multiply(self.dlogits, g), None  # a new array: dlogits is kept
        # recorded: the softmax as an op of every logit (second derivatives see that),
        # from max-shifted exponentials so large logits keep their digits
        n, k = logits.shape
        one_hot = xp.const(logits, self.backend.one_hot(k, self.labels, logits.dtype))
        d = xp.divide(xp.subtract(xp.softmax(xp.value(logits), (1,)), one_hot), n)
        return xp.multiply(d, xp.broadcast_to(xp.reshape(g, (1, 1)), logits.shape)), None


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return SoftmaxCrossEntropy()(logits, labels)


