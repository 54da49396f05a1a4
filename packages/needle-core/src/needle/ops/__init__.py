"""needle's differentiable operators: each a small class (``compute`` on backend
arrays, ``gradient`` in Tensor ops) plus a lower-case function that applies it."""

from types import ModuleType as _ModuleType

from . import logic, views
from ._axes import normalize_axes, reduction_args
from .conv import Col2Im, Conv, Im2Col, col2im, conv, im2col
from .creation import arange, full, full_like, ones_like, rand_like, randn_like, zeros_like
from .elementwise import (
    Abs,
    Clamp,
    Clone,
    Cos,
    Maximum,
    Sin,
    Where,
    abs,
    clamp,
    clip,
    clone,
    cos,
    maximum,
    minimum,
    sin,
    where,
)
from .fused import (
    BatchNorm,
    Linear,
    SoftmaxCrossEntropy,
    batch_norm,
    linear,
    softmax_cross_entropy,
)
from .logic import (
    Any_,
    ArgMax,
    Compare,
    Logical,
    NonDifferentiableOp,
    all,
    any,
    argmax,
    argmin,
    compare,
    logical_and,
    logical_not,
    logical_or,
)
from .mathematic import (
    AddScalar,
    AsType,
    DivScalar,
    EWiseAdd,
    EWiseDiv,
    EWiseMul,
    EWisePow,
    Exp,
    Log,
    MatMul,
    MulScalar,
    Negate,
    PowerScalar,
    ReLU,
    Sigmoid,
    Sqrt,
    Tanh,
    add,
    add_scalar,
    astype,
    divide,
    divide_scalar,
    exp,
    log,
    matmul,
    mul_scalar,
    multiply,
    negate,
    power,
    power_scalar,
    relu,
    sigmoid,
    sqrt,
    sum_to_shape,
    tanh,
)
from .pool import AvgPool, MaxPool, avg_pool2d, max_pool2d
from .reduce import (
    LogSoftmax,
    LogSumExp,
    Max,
    Softmax,
    Summation,
    logsoftmax,
    logsumexp,
    summation,
)
from .shape import (
    BroadcastTo,
    Dilate,
    Flip,
    GetItem,
    MakeTensorTuple,
    Pad,
    Permute,
    Reshape,
    ScatterAdd,
    Split,
    Stack,
    Transpose,
    TupleGetItem,
    UnDilate,
    broadcast_to,
    dilate,
    flip,
    get_item,
    make_tuple,
    pad,
    permute,
    reshape,
    split,
    stack,
    transpose,
    tuple_get_item,
    undilate,
)
from .statistics import Prod, amax, amin, mean, prod, softmax, std, sum, var
from .views import Concatenate, cat, concatenate, flatten, squeeze, unsqueeze, view

max = amax  # noqa: A001 - values only (PyTorch's max(dim) also returns indices)
min = amin  # noqa: A001

__all__ = [name for name, value in dict(globals()).items()
           if not name.startswith("_") and not isinstance(value, _ModuleType)]
