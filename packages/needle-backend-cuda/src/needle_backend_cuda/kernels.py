"""Hand-written CUDA kernels, compiled at run time by CuPy (NVRTC) and cached.

Fusing pays where an op chain reads the same data several times:

* **row kernels** (one thread block per row of a contiguous ``(rows, cols)``
  array): logsumexp, log-softmax forward and backward, and softmax cross-entropy
  with its gradient. Each reads a row twice (max, then Σ exp) instead of the
  five or six full passes and temporaries of the composed version.
* **column kernels** (a block per 32 columns of a row-major ``(rows, cols)`` array):
  batch norm forward and backward, one launch each instead of about 25 and 10.
* **optimizer steps** as ``ElementwiseKernel``: one pass over param, grad and the
  optimizer state instead of a kernel (and a temporary) per arithmetic op.

The sources are plain strings so that tests without a GPU can compile them with
``nvcc`` and run the element-wise bodies through a C++ harness.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np

#: Row kernels. No headers (NVRTC has none): infinities come from bit patterns,
#: and the math functions are picked per type explicitly.
ROW_SOURCE = r"""
__device__ __forceinline__ float nd_exp(float x) { return expf(x); }
__device__ __forceinline__ double nd_exp(double x) { return exp(x); }
__device__ __forceinline__ float nd_log(float x) { return logf(x); }
__device__ __forceinline__ double nd_log(double x) { return log(x); }
__device__ __forceinline__ float nd_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double nd_max(double a, double b) { return fmax(a, b); }

template <typename T> __device__ __forceinline__ T nd_neg_inf();
template <> __device__ __forceinline__ float nd_neg_inf<float>() {
    return __int_as_float(0xff800000);
}
template <> __device__ __forceinline__ double nd_neg_inf<double>() {
    return __longlong_as_double(0xfff0000000000000LL);
}
template <typename T> __device__ __forceinline__ T nd_pos_inf();
template <> __device__ __forceinline__ float nd_pos_inf<float>() {
    return __int_as_float(0x7f800000);
}
template <> __device__ __forceinline__ double nd_pos_inf<double>() {
    return __longlong_as_double(0x7ff0000000000000LL);
}

/* Reduce v over the block (blockDim.x a multiple of 32); every thread gets the result.
   fmax ignores NaN, so a NaN never becomes the shift; it still reaches the sum of exps. */
template <typename T, bool IS_MAX>
__device__ T nd_block_reduce(T v, T* shared) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        T other = __shfl_xor_sync(0xffffffffu, v, o);
        v = IS_MAX ? nd_max(v, other) : v + other;
    }
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : (IS_MAX ? nd_neg_inf<T>() : T(0));
    for (int o = 16; o > 0; o >>= 1) {
        T other = __shfl_xor_sync(0xffffffffu, v, o);
        v = IS_MAX ? nd_max(v, other) : v + other;
    }
    __syncthreads();  /* shared is reused by the next reduction */
    return v;
}

/* The CPU backend's rule: subtract the row max, or 0 when the max is not finite
   (all -inf gives log 0 = -inf, any +inf gives +inf, a NaN gives NaN). */
template <typename T>
__device__ T nd_row_shift(const T* r, long long cols, T* shared) {
    T m = nd_neg_inf<T>();
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) m = nd_max(m, r[j]);
    m = nd_block_reduce<T, true>(m, shared);
    return (m > nd_neg_inf<T>() && m < nd_pos_inf<T>()) ? m : T(0);
}

/* log sum exp(r - shift): the row's logsumexp less its shift. Kept apart so that
   (r - shift) - this keeps its digits at large |r|, where r - logsumexp(r) cancels
   them all (log_softmax([1e9, 1e9]) in float32 would be [0, 0], not -log 2). */
template <typename T>
__device__ T nd_row_shifted_lse(const T* r, long long cols, T shift, T* shared) {
    T s = T(0);
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += nd_exp(r[j] - shift);
    return nd_log(nd_block_reduce<T, false>(s, shared));
}

template <typename T>
__device__ T nd_row_logsumexp(const T* r, long long cols, T* shared) {
    const T shift = nd_row_shift(r, cols, shared);
    return nd_row_shifted_lse(r, cols, shift, shared) + shift;
}

template <typename T>
__device__ void nd_logsumexp(const T* x, T* out, long long rows, long long cols, T* shared) {
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T lse = nd_row_logsumexp(x + row * cols, cols, shared);
        if (threadIdx.x == 0) out[row] = lse;
    }
}

template <typename T>
__device__ void nd_log_softmax(const T* x, T* y, long long rows, long long cols, T* shared) {
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* r = x + row * cols;
        const T shift = nd_row_shift(r, cols, shared);
        const T lse = nd_row_shifted_lse(r, cols, shift, shared);
        for (long long j = threadIdx.x; j < cols; j += blockDim.x)
            y[row * cols + j] = (r[j] - shift) - lse;
    }
}

/* d/dz of y = log_softmax(z), given y and the output gradient g: g - exp(y) * sum(g). */
template <typename T>
__device__ void nd_log_softmax_grad(const T* y, const T* g, T* dz, long long rows,
                                    long long cols, T* shared) {
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long base = row * cols;
        T s = T(0);
        for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += g[base + j];
        s = nd_block_reduce<T, false>(s, shared);
        for (long long j = threadIdx.x; j < cols; j += blockDim.x)
            dz[base + j] = g[base + j] - nd_exp(y[base + j]) * s;
    }
}

/* Softmax cross-entropy of each row and its gradient, scaled by `scale`
   (1/rows for a mean): loss = lse - z[label], dz = (softmax - onehot) * scale.
   A label outside [0, cols) gives a NaN loss and NaN gradient row. */
template <typename T>
__device__ void nd_softmax_xent(const T* z, const long long* labels, T* loss, T* dz,
                                T scale, long long rows, long long cols, T* shared) {
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* r = z + row * cols;
        const T shift = nd_row_shift(r, cols, shared);
        const T lse = nd_row_shifted_lse(r, cols, shift, shared);  /* less the shift */
        const long long label = labels[row];
        const bool valid = label >= 0 && label < cols;
        const T nan = nd_pos_inf<T>() - nd_pos_inf<T>();
        if (threadIdx.x == 0) loss[row] = valid ? lse - (r[label] - shift) : nan;
        for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
            const T p = nd_exp((r[j] - shift) - lse) - (j == label ? T(1) : T(0));
            dz[row * cols + j] = valid ? p * scale : nan;
        }
    }
}

#define ND_ROW_KERNELS(T, SFX)                                                              \
extern "C" __global__ void needle_logsumexp_##SFX(const T* x, T* out, long long rows,      \
                                                  long long cols) {                        \
    __shared__ T shared[32];                                                               \
    nd_logsumexp<T>(x, out, rows, cols, shared);                                           \
}                                                                                          \
extern "C" __global__ void needle_log_softmax_##SFX(const T* x, T* y, long long rows,      \
                                                    long long cols) {                      \
    __shared__ T shared[32];                                                               \
    nd_log_softmax<T>(x, y, rows, cols, shared);                                           \
}                                                                                          \
extern "C" __global__ void needle_log_softmax_grad_##SFX(const T* y, const T* g, T* dz,    \
                                                         long long rows, long long cols) { \
    __shared__ T shared[32];                                                               \
    nd_log_softmax_grad<T>(y, g, dz, rows, cols, shared);                                  \
}                                                                                          \
extern "C" __global__ void needle_softmax_xent_##SFX(const T* z, const long long* labels,  \
                                                     T* loss, T* dz, T scale,              \
                                                     long long rows, long long cols) {     \
    __shared__ T shared[32];                                                               \
    nd_softmax_xent<T>(z, labels, loss, dz, scale, rows, cols, shared);                    \
}

ND_ROW_KERNELS(float, f32)
ND_ROW_KERNELS(double, f64)
"""

ROW_KERNEL_NAMES = tuple(f"needle_{k}_{s}" for k in
                         ("logsumexp", "log_softmax", "log_softmax_grad", "softmax_xent")
                         for s in ("f32", "f64"))

#: dtypes the row kernels are compiled for, by suffix.
ROW_DTYPES = {np.dtype("float32"): "f32", np.dtype("float64"): "f64"}

#: Column kernels: batch norm over the rows of a row-major (rows, cols) array. A block
#: takes 32 adjacent columns, so each warp reads 32 neighbours in one coalesced load, and
#: splits the rows among its COLUMN_WARPS warps; their partial sums meet in shared memory.
#: Why fuse: composed from the contract's generic ops, batch norm forward and backward
#: cost about 35 CuPy calls, and on a small model the host time of those calls, not
#: the GPU, sets the step time (an H200 profile: 2.0 ms of GPU time in a 9.4 ms step).
COLUMN_WARPS = 8

COLUMN_SOURCE = f"#define ND_COLUMN_WARPS {COLUMN_WARPS}\n" + r"""
__device__ __forceinline__ float nd_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double nd_sqrt(double x) { return sqrt(x); }

/* The sum of v over the block's warps (one column per lane), given to every thread. */
template <typename T>
__device__ T nd_column_sum(T v, T* shared) {
    shared[threadIdx.y * 32 + threadIdx.x] = v;
    __syncthreads();
    T s = T(0);
    for (int w = 0; w < blockDim.y; ++w) s += shared[w * 32 + threadIdx.x];
    __syncthreads();  /* shared is reused by the next sum */
    return s;
}

/* y = x_hat * weight + bias with x_hat = (x - mean) * inv_std, the batch's biased
   variance computed after the mean (two passes, as the CPU backend does). stats holds
   three rows: mean, var, inv_std. With update_running, the running statistics become
   keep * r + momentum * (batch value), keep = 1 - momentum computed in double. */
template <typename T>
__device__ void nd_batch_norm(const T* x, const T* weight, const T* bias, T* y, T* x_hat,
                              T* stats, T* running_mean, T* running_var,
                              long long update_running, T momentum, T keep, T eps,
                              long long rows, long long cols, T* shared) {
    const long long col = blockIdx.x * 32LL + threadIdx.x;
    const bool active = col < cols;
    T s = T(0);
    if (active)
        for (long long r = threadIdx.y; r < rows; r += blockDim.y) s += x[r * cols + col];
    const T mean = nd_column_sum(s, shared) / T(rows);
    s = T(0);
    if (active)
        for (long long r = threadIdx.y; r < rows; r += blockDim.y) {
            const T c = x[r * cols + col] - mean;
            s += c * c;
        }
    const T var = nd_column_sum(s, shared) / T(rows);
    if (!active) return;  /* after the last __syncthreads */
    const T inv_std = T(1) / nd_sqrt(var + eps);
    const T w = weight[col], b = bias[col];
    for (long long r = threadIdx.y; r < rows; r += blockDim.y) {
        const long long i = r * cols + col;
        const T h = (x[i] - mean) * inv_std;
        x_hat[i] = h;
        y[i] = h * w + b;
    }
    if (threadIdx.y == 0) {
        stats[col] = mean;
        stats[cols + col] = var;
        stats[2 * cols + col] = inv_std;
        if (update_running) {
            running_mean[col] = keep * running_mean[col] + momentum * mean;
            running_var[col] = keep * running_var[col] + momentum * var;
        }
    }
}

/* dx = w * inv_std * (g - sum(g)/N - x_hat * sum(g * x_hat)/N); the sums are the
   gradients of bias and weight. */
template <typename T>
__device__ void nd_batch_norm_grad(const T* g, const T* x_hat, const T* inv_std,
                                   const T* weight, T* dx, T* g_weight, T* g_bias,
                                   long long rows, long long cols, T* shared) {
    const long long col = blockIdx.x * 32LL + threadIdx.x;
    const bool active = col < cols;
    T sg = T(0), sgx = T(0);
    if (active)
        for (long long r = threadIdx.y; r < rows; r += blockDim.y) {
            const long long i = r * cols + col;
            sg += g[i];
            sgx += g[i] * x_hat[i];
        }
    sg = nd_column_sum(sg, shared);
    sgx = nd_column_sum(sgx, shared);
    if (!active) return;
    const T scale = weight[col] * inv_std[col], mean_g = sg / T(rows), mean_gx = sgx / T(rows);
    for (long long r = threadIdx.y; r < rows; r += blockDim.y) {
        const long long i = r * cols + col;
        dx[i] = (g[i] - mean_g - x_hat[i] * mean_gx) * scale;
    }
    if (threadIdx.y == 0) {
        g_weight[col] = sgx;
        g_bias[col] = sg;
    }
}

#define ND_COLUMN_KERNELS(T, SFX)                                                           \
extern "C" __global__ void needle_batch_norm_##SFX(                                        \
        const T* x, const T* weight, const T* bias, T* y, T* x_hat, T* stats,              \
        T* running_mean, T* running_var, long long update_running, T momentum, T keep,     \
        T eps, long long rows, long long cols) {                                           \
    __shared__ T shared[ND_COLUMN_WARPS * 32];                                             \
    nd_batch_norm<T>(x, weight, bias, y, x_hat, stats, running_mean, running_var,          \
                     update_running, momentum, keep, eps, rows, cols, shared);             \
}                                                                                          \
extern "C" __global__ void needle_batch_norm_grad_##SFX(                                   \
        const T* g, const T* x_hat, const T* inv_std, const T* weight, T* dx,              \
        T* g_weight, T* g_bias, long long rows, long long cols) {                          \
    __shared__ T shared[ND_COLUMN_WARPS * 32];                                             \
    nd_batch_norm_grad<T>(g, x_hat, inv_std, weight, dx, g_weight, g_bias, rows, cols,     \
                          shared);                                                         \
}

ND_COLUMN_KERNELS(float, f32)
ND_COLUMN_KERNELS(double, f64)
"""

COLUMN_KERNEL_NAMES = tuple(f"needle_{k}_{s}" for k in ("batch_norm", "batch_norm_grad")
                            for s in ("f32", "f64"))

#: Course-style SGD: g = grad + wd*p; u = momentum*u + (1-momentum)*g; p -= lr*u.
#: ``1 - momentum`` arrives computed in double: in float32 it would lose digits.
SGD_MOMENTUM = (
    "T grad, T lr, T momentum, T dampening, T wd",
    "T param, T u",
    """
    const T g = grad + wd * param;
    u = momentum * u + dampening * g;
    param = param - lr * u;
    """,
    "needle_sgd_momentum",
)

SGD_PLAIN = (
    "T grad, T lr, T wd",
    "T param",
    "param = param - lr * (grad + wd * param);",
    "needle_sgd",
)

#: Adam with bias correction folded into two scalars, as the CPU backend computes it:
#: lr_hat = lr / (1 - beta1^t), inv_bc2 = 1 / (1 - beta2^t); ``1 - beta`` comes in
#: computed in double (1 - 0.999f in float32 is off by 1e-5 relative).
ADAM = (
    "T grad, T lr_hat, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T eps, T wd, "
    "T inv_bc2",
    "T param, T m, T v",
    """
    const T g = grad + wd * param;
    m = beta1 * m + one_minus_beta1 * g;
    v = beta2 * v + one_minus_beta2 * (g * g);
    param = param - lr_hat * m / (sqrt(v * inv_bc2) + eps);
    """,
    "needle_adam",
)

ELEMENTWISE = {"sgd_momentum": SGD_MOMENTUM, "sgd": SGD_PLAIN, "adam": ADAM}


@functools.cache
def row_module(cupy: ModuleType) -> Any:
    """The row kernels' module (compiled by NVRTC on first use, then cached by CuPy on disk)."""
    return cupy.RawModule(code=ROW_SOURCE)


@functools.cache
def row_kernel(cupy: ModuleType, name: str) -> Any:
    return row_module(cupy).get_function(name)


@functools.cache
def column_kernel(cupy: ModuleType, name: str) -> Any:
    """A column kernel (its module is compiled by NVRTC on first use, then cached)."""
    return cupy.RawModule(code=COLUMN_SOURCE).get_function(name)


def column_launch(cols: int) -> tuple[tuple[int], tuple[int, int]]:
    """Grid and block for the column kernels: a block per 32 columns."""
    return ((cols + 31) // 32,), (32, COLUMN_WARPS)


@functools.cache
def elementwise(cupy: ModuleType, name: str) -> Any:
    in_params, out_params, body, kernel_name = ELEMENTWISE[name]
    return cupy.ElementwiseKernel(in_params, out_params, body, kernel_name)


def row_launch(cols: int, rows: int) -> tuple[tuple[int], tuple[int]]:
    """Grid and block for the row kernels: a warp for short rows, up to 8 for long ones."""
    threads = 32 if cols <= 256 else 128 if cols <= 4096 else 256
    return (max(1, min(rows, 1 << 20)),), (threads,)
