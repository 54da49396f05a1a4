import needle as ndl
import numpy as np


def test_matmul_relu_sum_backward_matches_numpy(device):
    x_np = np.random.randn(3, 4)
    w_np = np.random.randn(4, 2)
    x = ndl.Tensor(x_np, device=device, dtype="float64")
    w = ndl.Tensor(w_np, device=device, dtype="float64")
    (x @ w).relu().sum().backward()
    mask = (x_np @ w_np > 0).astype(float)
    np.testing.assert_allclose(x.grad.numpy(), mask @ w_np.T, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), x_np.T @ mask, rtol=1e-12)
