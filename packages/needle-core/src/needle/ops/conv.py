"""2-D convolution in the course's layout: NHWC input, KKIO kernel (K, K, C_in, C_out)."""

from __future__ import annotations

from ..autograd import NeedleError, Tensor, TensorOp


class Conv(TensorOp):
    """Cross-correlation with zero ``padding`` and ``stride``; backends supply the kernel."""

    def __init__(self, stride: int = 1, padding: int = 0) -> None:
        self.stride = stride
        self.padding = padding

    def compute(self, x, w):
        b = self.backend
        p = self.padding
        if p:
            x = b.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        return b.conv(x, w, self.stride)

    def check(self, x, w):
        if x.ndim != 4 or w.ndim != 4:
            raise NeedleError(f"conv: expected NHWC input and KKIO kernel (4-D each), "
                              f"got shapes {x.shape} and {w.shape}")
        if x.shape[3] != w.shape[2]:
            raise NeedleError(f"conv: input has {x.shape[3]} channels (shape {x.shape}) but the "
                              f"kernel expects {w.shape[2]} (shape {w.shape})")
        if w.shape[0] > x.shape[1] + 2 * self.padding:
            raise NeedleError(f"conv: kernel {w.shape[:2]} is larger than the padded input "
                              f"{x.shape[1:3]} (padding {self.padding})")

    def gradient(self, out_grad, node):
        x, w = node.inputs
        n, h, wd, _ = x.shape
        k = w.shape[0]
        p, s = self.padding, self.stride
        full_h, full_w = h + 2 * p - k + 1, wd + 2 * p - k + 1  # output size at stride 1
        g = out_grad
        if s > 1:
            g = dilate(g, (1, 2), s - 1)[:, :full_h, :full_w, :]
        # d/dx: correlate the gradient with the flipped, channel-swapped kernel.
        w_flipped = permute(flip(w, (0, 1)), (0, 1, 3, 2))
        gx = conv(g, w_flipped, 1, k - 1)[:, p:p + h, p:p + wd, :]
        # d/dw: correlate the padded input with the gradient, batch as channels.
        xp = pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x
        xs, gs = permute(xp, (3, 1, 2, 0)), permute(g, (1, 2, 0, 3))
        if full_h != full_w:  # backends take square kernels: zero-pad the shorter side of both
            m = max(full_h, full_w)
            xs = pad(xs, ((0, 0), (0, m - full_h), (0, m - full_w), (0, 0)))
            gs = pad(gs, ((0, m - full_h), (0, m - full_w), (0, 0), (0, 0)))
        gw = conv(xs, gs, 1, 0)
        return gx, permute(gw, (1, 2, 0, 3))


def conv(a: Tensor, b: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    if stride < 1 or padding < 0:
        raise NeedleError(f"conv: stride must be >= 1 and padding >= 0, got {stride}, {padding}")
    return Conv(stride, padding)(a, b)


from .shape import dilate, flip, pad, permute  # noqa: E402
