"""Tensor and reverse-mode automatic differentiation.

A Tensor holds a backend array (``cached_data``) and, when it needs a gradient,
the op and inputs that made it. ``backward`` walks those links in reverse
topological order (an iterative sort, so deep graphs never hit the recursion
limit) and calls each op's ``gradient``, which is written in Tensor ops.

Rules worth knowing:

* **No graph without need.** If no input requires a gradient, or inside
  ``no_grad()``, an op's result is a detached constant: loops over constants and
  ``w.data = ...`` updates keep no history.
* **Gradients accumulate** into ``.grad`` across ``backward`` calls, as in PyTorch
  (the course overwrote); optimizers' ``reset_grad()``/``zero_grad()`` clear them.
  Only leaves (tensors not made by an op) keep ``.grad``.
* **Higher order** gradients: ``backward(create_graph=True)`` records the graph of
  the gradient computation, so ``x.grad`` can itself be differentiated.
* **dtypes.** Float32 by default. Tensors combined in one op must share a dtype
  (a mismatch is an error naming both: no silent up- or down-casting); Python
  scalars are weak and take the tensor's dtype.
"""

from __future__ import annotations

import builtins
import functools
import gc
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from heapq import heappop, heappush
from typing import Any, TypeVar

import numpy as np

from .backend import Array
from .device import Device, default_device
from .device import device as _as_device


def __getattr__(name: str) -> Any:
    """``TENSOR_COUNTER`` (course name): how many Tensors are alive now, to catch leaks.

    Counted when read, from the garbage collector's list of objects, so it costs
    milliseconds per read. Why not a counter kept by ``Value.__del__``, as in the
    course: a finalizer runs a Python call at every tensor's death, which was about
    a third of a small op's cost (5.8 against 4.1 µs for ``a + a``).
    """
    if name == "TENSOR_COUNTER":
        return sum(1 for obj in gc.get_objects() if isinstance(obj, Value))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Creation numbers: every input is numbered before the ops that use it (see backward).
_creation = itertools.count()

_grad_enabled = True

F = TypeVar("F", bound=Callable[..., Any])
V = TypeVar("V", bound="Value")


class NeedleError(ValueError):
    """Bad input to a needle op: names the op, shapes, dtypes or devices involved."""


class no_grad:  # noqa: N801 - named like torch.no_grad
    """Context manager and decorator: ops inside build no graph."""

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class enable_grad(no_grad):  # noqa: N801
    """Turn graph recording back on inside a ``no_grad`` region."""

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class Op:
    """An operator: ``compute`` runs on backend arrays, ``gradient`` in Tensor ops.

    ``make_from_op`` sets ``self.backend`` to the inputs' backend before ``compute``.
    """

    backend: Any
    #: Whether all inputs must share a dtype (checked once, in ``make_from_op``).
    same_dtype = True

    def __call__(self, *args: Any) -> Any:
        raise NotImplementedError

    def compute(self, *arrays: Array) -> Array:
        """The result on the backend's arrays (``self.backend``'s methods only)."""
        raise NotImplementedError

    def gradient(self, out_grad: Value, node: Value) -> Value | tuple[Tensor | None, ...]:
        """The gradient of each input, in Tensor ops: one Tensor (or None) per input."""
        raise NotImplementedError(f"{type(self).__name__} has no gradient")

    def gradient_as_tuple(self, out_grad: Value, node: Value) -> tuple[Value | None, ...]:
        out = self.gradient(out_grad, node)
        if isinstance(out, tuple):
            return out
        if isinstance(out, list):
            return tuple(out)
        return (out,)

    def vjp(self, out_grad: Array, node: Value) -> tuple[Array | None, ...]:
        """The inputs' gradients as backend arrays (``None`` where none is needed).

        ``backward()`` without ``create_graph`` calls this: nothing is recorded then, so
        Tensor wrappers around each gradient would be pure overhead. The default runs
        ``gradient`` on a constant; ops on the hot path of training override it with
        the same formula on arrays. ``out_grad`` may be shared: never write into it.
        """
        wrap = TensorTuple if isinstance(node, TensorTuple) else Tensor
        grads = self.gradient_as_tuple(wrap.make_const(out_grad, device=node._device), node)
        return tuple(None if g is None else g.cached_data for g in grads)

    def check(self, *inputs: Value) -> None:
        """Called only after ``compute`` failed: raise a clearer error if you can."""

    def __getattr__(self, name: str) -> Any:
        # ``compute`` called directly (not through make_from_op): use the default device.
        if name == "backend":
            return default_device().backend
        raise AttributeError(name)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "backend")
        return f"{type(self).__name__}({fields})"


class TensorOp(Op):
    """An op whose output is a single Tensor."""

    def __call__(self, *args: Value) -> Tensor:
        return Tensor.make_from_op(self, args)


class TensorTupleOp(Op):
    """An op whose output is a tuple of Tensors."""

    def __call__(self, *args: Value) -> TensorTuple:
        return TensorTuple.make_from_op(self, args)


class Value:
    """A node of the computational graph."""

    __slots__ = ("op", "inputs", "cached_data", "requires_grad", "_device", "_seq",
                 "__weakref__")

    op: Op | None
    inputs: tuple[Value, ...]
    cached_data: Any
    requires_grad: bool
    _device: Device
    _seq: int  # creation number: inputs are numbered before the ops that use them

    def realize_cached_data(self) -> Any:
        return self.cached_data

    def is_leaf(self) -> bool:
        return self.op is None

    @property
    def device(self) -> Device:
        return self._device

    @classmethod
    def make_const(cls: type[V], data: Any, requires_grad: bool = False,
                   device: Device | None = None) -> V:
        """Wrap a backend array (no copy) as a leaf."""
        value: Any = object.__new__(cls)  # Any: ``grad`` exists on Tensors only
        value._seq = next(_creation)
        value.op = None
        value.inputs = ()
        value.cached_data = data
        value.requires_grad = requires_grad
        value._device = device or default_device()
        if issubclass(cls, Tensor):
            value.grad = None
        return value

    @classmethod
    def make_from_op(cls: type[V], op: Op, inputs: tuple[Value, ...]) -> V:
        """Run ``op`` on the inputs' arrays; record the graph only when needed.

        This is the hot path of every op: keep it short.
        """
        first = inputs[0]
        dev = first._device
        arrays: Sequence[Any]
        if len(inputs) == 1:
            arrays = (first.cached_data,)
        else:
            dtype = first.cached_data.dtype
            arrays = collected = []  # one pass, no comprehension: this runs for every op
            for x in inputs:
                a = x.cached_data
                if x._device is not dev or a.dtype is not dtype:  # then look closer
                    _check_inputs(op, inputs, dev)
                collected.append(a)
        op.backend = dev._backend or dev.backend
        try:
            data = op.compute(*arrays)
        except NeedleError:
            raise
        except Exception as exc:
            op.check(*inputs)
            raise NeedleError(_describe_failure(op, inputs, exc)) from None
        value: Any = object.__new__(cls)  # Any: ``grad`` exists on Tensors only
        value._seq = next(_creation)
        value.cached_data = data
        value._device = dev
        if cls is Tensor:
            value.grad = None
        if _grad_enabled:
            for x in inputs:
                if x.requires_grad:
                    value.op = op
                    value.inputs = inputs
                    value.requires_grad = True
                    return value
        value.op = None
        value.inputs = ()
        value.requires_grad = False
        return value


def _check_inputs(op: Op, inputs: tuple[Value, ...], dev: Device) -> None:
    """Same device and (unless the op allows otherwise) same dtype for every input."""
    dtype = inputs[0].cached_data.dtype
    for x in inputs:
        if x._device is not dev and x._device != dev:
            devices = ", ".join(repr(y._device) for y in inputs)
            raise NeedleError(
                f"{type(op).__name__}: inputs are on different devices ({devices}); "
                f"move them with .to(device) first"
            )
        xdtype = x.cached_data.dtype
        if xdtype is not dtype and op.same_dtype and xdtype != dtype:
            dtypes = ", ".join(str(y.cached_data.dtype) for y in inputs)
            raise NeedleError(
                f"{type(op).__name__}: inputs have different dtypes ({dtypes}); "
                f"convert one with .astype(dtype): needle never casts silently"
            )


def _describe_failure(op: Op, inputs: tuple[Value, ...], exc: Exception) -> str:
    shapes = ", ".join(str(tuple(x.cached_data.shape)) for x in inputs)
    return f"{op!r} failed on input shapes {shapes}: {exc}"


class TensorTuple(Value):
    """A tuple of Tensors produced by one op (``split``)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self.cached_data)

    def __getitem__(self, index: int) -> Tensor:
        return ops.tuple_get_item(self, index)

    def tuple(self) -> builtins.tuple[Tensor, ...]:
        return tuple(self[i] for i in range(len(self)))

    def __iter__(self):
        return iter(self.tuple())

    def __add__(self, other: TensorTuple) -> TensorTuple:
        return ops.make_tuple(*[self[i] + other[i] for i in range(len(self))])

    def detach(self) -> TensorTuple:
        return TensorTuple.make_const(self.cached_data, device=self._device)

    @property
    def shape(self) -> builtins.tuple[builtins.tuple[int, ...], ...]:
        return tuple(a.shape for a in self.cached_data)

    def __repr__(self) -> str:
        return f"needle.TensorTuple({self.tuple()!r})"


class Tensor(Value):
    """An n-dimensional array on a device, with reverse-mode autograd.

    ``Tensor(data, device=None, dtype=None, requires_grad=True)``: ``data`` may be a
    Tensor (its dtype is kept unless given), a NumPy array, a list or a scalar
    (stored as float32 unless ``dtype`` says otherwise).
    """

    __slots__ = ("grad", "__dict__")

    grad: Tensor | None

    def __init__(self, array: Any, *, device: Device | str | None = None,
                 dtype: Any = None, requires_grad: bool = True, **kwargs: Any) -> None:
        dev = _as_device(device) if device is not None else None
        if isinstance(array, Tensor):
            dev = dev or array.device
            dtype = np.dtype(dtype) if dtype is not None else array.dtype
            if dev == array.device and dtype == array.dtype:
                data = array.cached_data
            else:
                data = dev.backend.array(array.numpy(), dtype)
        else:
            dev = dev or default_device()
            dtype = np.dtype(dtype if dtype is not None else "float32")
            data = dev.backend.array(array, dtype)
        self._seq = next(_creation)
        self.op = None
        self.inputs = ()
        self.cached_data = data
        self.requires_grad = requires_grad
        self._device = dev
        self.grad = None

    # -- basic properties --------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.cached_data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.cached_data.dtype

    @property
    def ndim(self) -> int:
        return len(self.cached_data.shape)

    @property
    def size(self) -> int:
        return math.prod(self.cached_data.shape)

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (shares memory on the CPU backend)."""
        return self._device.backend.to_numpy(self.cached_data)

    def item(self) -> float:
        return self.numpy().item()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.numpy()
        return out.astype(dtype) if dtype is not None else out

    def __len__(self) -> int:
        return self.shape[0]

    # -- graph management ----------------------------------------------------
    def detach(self) -> Tensor:
        """A constant sharing this tensor's data, outside any graph."""
        return Tensor.make_const(self.cached_data, device=self._device)

    @property
    def data(self) -> Tensor:
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, not {type(value).__name__}")
        if value.dtype != self.dtype:
            raise NeedleError(f"Tensor.data: dtype {value.dtype} does not match {self.dtype}")
        if value.device != self.device:
            raise NeedleError(f"Tensor.data: device {value.device} does not match {self.device}")
        self.cached_data = value.cached_data

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = flag
        return self

    def astype(self, dtype: Any) -> Tensor:
        return ops.astype(self, dtype)

    def to(self, device: Device | str, dtype: Any = None) -> Tensor:
        """This tensor on ``device`` (itself if already there), as a new leaf."""
        dev = _as_device(device)
        if dev == self._device and (dtype is None or np.dtype(dtype) == self.dtype):
            return self
        return Tensor(self.numpy(), device=dev, dtype=dtype or self.dtype,
                      requires_grad=self.requires_grad)

    def backward(self, out_grad: Tensor | None = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · out_grad into every leaf's ``.grad``."""
        if out_grad is None:
            if self.size != 1:
                raise NeedleError(
                    f"backward() on a tensor of shape {self.shape} needs out_grad "
                    f"(only single-element outputs default to ones)"
                )
            out_grad = Tensor.make_const(
                self._device.backend.full(self.cached_data.shape, 1.0, self.dtype),
                device=self._device)
        elif tuple(out_grad.shape) != self.shape:
            raise NeedleError(f"backward(): out_grad has shape {out_grad.shape}, "
                              f"but the output has shape {self.shape}")
        if not self.requires_grad:
            raise NeedleError("backward() on a tensor that does not require grad "
                              "(no input required a gradient, or it was made under no_grad)")
        compute_gradient_of_variables(self, out_grad, create_graph)

    def __repr__(self) -> str:
        return f"needle.Tensor({self.numpy()!r}, device={self._device!r})"

    def __str__(self) -> str:
        return str(self.numpy())

    def __bool__(self) -> bool:
        return bool(self.numpy())

    def __float__(self) -> float:
        return float(self.numpy())

    def __int__(self) -> int:
        return int(self.numpy())

    # -- operators -------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return ops.EWiseAdd()(self, other)
        return ops.AddScalar(other)(self)

    def __mul__(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return ops.EWiseMul()(self, other)
        return ops.MulScalar(other)(self)

    def __pow__(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return ops.EWisePow()(self, other)
        return ops.PowerScalar(other)(self)

    def __rpow__(self, other: Any) -> Tensor:
        return ops.exp(self * float(np.log(other)))  # c ** x = exp(x log c)

    def __sub__(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return ops.EWiseAdd()(self, ops.Negate()(other))
        return ops.AddScalar(-other)(self)

    def __rsub__(self, other: Any) -> Tensor:
        return ops.AddScalar(other)(ops.Negate()(self))

    def __truediv__(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return ops.EWiseDiv()(self, other)
        return ops.DivScalar(other)(self)

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.MulScalar(other)(ops.PowerScalar(-1)(self))

    def __matmul__(self, other: Tensor) -> Tensor:
        return ops.MatMul()(self, other)

    def __neg__(self) -> Tensor:
        return ops.Negate()(self)

    def __getitem__(self, index: Any) -> Tensor:
        return ops.get_item(self, index)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare("less", other)

    def __le__(self, other: Any) -> Tensor:
        return self._compare("less_equal", other)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare("greater", other)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare("greater_equal", other)

    def eq(self, other: Any) -> Tensor:
        """Element-wise equality as a float tensor (``==`` stays identity, for hashing)."""
        return self._compare("equal", other)

    def _compare(self, fn: str, other: Any) -> Tensor:
        return ops.Compare(fn)(self, other) if isinstance(other, Tensor) \
            else ops.Compare(fn, other)(self)

    __radd__ = __add__
    __rmul__ = __mul__
    __hash__ = object.__hash__

    # -- methods -------------------------------------------------------------------
    def sum(self, axes: Any = None, keepdims: bool = False) -> Tensor:
        return ops.summation(self, axes, keepdims)

    def max(self, axes: Any = None, keepdims: bool = False) -> Tensor:
        return ops.max(self, axes, keepdims)

    def broadcast_to(self, shape: tuple[int, ...]) -> Tensor:
        return ops.broadcast_to(self, shape)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def transpose(self, axes: tuple[int, int] | None = None) -> Tensor:
        return ops.transpose(self, axes)

    def permute(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.permute(self, axes)

    def matmul(self, other: Tensor) -> Tensor:
        return self @ other

    def exp(self) -> Tensor:
        return ops.exp(self)

    def log(self) -> Tensor:
        return ops.log(self)

    def relu(self) -> Tensor:
        return ops.relu(self)

    def tanh(self) -> Tensor:
        return ops.tanh(self)

    def sigmoid(self) -> Tensor:
        return ops.sigmoid(self)

    @property
    def T(self) -> Tensor:  # noqa: N802 - NumPy's name
        return self.transpose()


def compute_gradient_of_variables(output: Tensor, out_grad: Tensor,
                                  create_graph: bool = False) -> None:
    """Reverse-mode AD: give every leaf that requires grad its ``.grad``.

    Gradients are computed without recording a graph unless ``create_graph``.
    """
    global _grad_enabled
    prev, _grad_enabled = _grad_enabled, create_graph
    try:
        _backward(output, out_grad, create_graph)
    finally:
        _grad_enabled = prev


def _backward(output: Value, out_grad: Value, create_graph: bool) -> None:
    """Walk the graph from ``output`` in reverse creation order.

    Every input is created before the ops that use it, so reverse creation order is a
    reverse topological order: a max-heap on creation numbers hands out each node after
    all of its users, when its gradient is complete. Why not a depth-first sort first:
    this finds the nodes and orders them in the same single pass (it is most of the
    Python time of a small model's backward). Only inputs that require grad are visited.
    Gradients travel as Tensors under ``create_graph`` and as backend arrays otherwise.
    """
    grads: dict[Value, Any] = {output: out_grad if create_graph else out_grad.cached_data}
    leaves = [output] if output.op is None else []
    heap = [] if output.op is None else [(-output._seq, output)]
    while heap:
        node = heappop(heap)[1]
        grad = grads.pop(node)
        op = node.op
        assert op is not None  # only nodes made by an op enter the heap
        pulled = op.gradient_as_tuple(grad, node) if create_graph else op.vjp(grad, node)
        for inp, g in zip(node.inputs, pulled):
            if g is not None and inp.requires_grad:
                old = grads.get(inp)
                if old is None:
                    grads[inp] = g
                    if inp.op is None:  # a leaf: its gradient is final once the heap is empty
                        leaves.append(inp)
                    else:
                        heappush(heap, (-inp._seq, inp))
                elif create_graph:
                    grads[inp] = old + g
                else:
                    grads[inp] = _add_arrays(inp._device.backend, old, g)
    for leaf in leaves:
        if isinstance(leaf, Tensor):
            grad = grads[leaf]
            if not create_graph:
                grad = Tensor.make_const(grad, device=leaf._device)
            leaf.grad = grad if leaf.grad is None else leaf.grad + grad


def _add_arrays(backend: Any, a: Any, b: Any) -> Any:
    """a + b for gradient arrays, or element-wise for the tuples of a TensorTuple."""
    if type(a) is tuple:
        return tuple(backend.add(x, y) for x, y in zip(a, b))
    return backend.add(a, b)


def find_topo_sort(nodes: Iterable[Value]) -> list[Value]:
    """Post-order of the graph above ``nodes`` (inputs before users), iteratively
    (the course's API; ``backward`` orders nodes by creation number instead).

    Only nodes that require grad are visited: constants need no gradient.
    """
    order: list[Value] = []
    visited: set[Value] = set()
    for root in nodes:
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(root.inputs))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child.requires_grad and child not in visited:
                    visited.add(child)
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


# Imported last (ops build on the classes above); Tensor methods use it at call time.
from . import ops  # noqa: E402
