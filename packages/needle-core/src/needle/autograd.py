"""Tensor and reverse-mode automatic differentiation.

A Tensor holds a backend array (``_array``; ``cached_data`` shows it as the course's
``NDArray``) and, when it needs a gradient, the op and inputs that made it.
``backward`` walks those links in reverse creation order (a heap, no recursion, so
deep graphs never hit the recursion limit) and calls each op's ``backward``: its
derivative, written once against a namespace that is the backend's arrays (plain
``backward()``) or Tensor ops (``create_graph=True``; ``needle.ops.gradmath``).
Users' ops may instead define the course's ``gradient(out_grad, node)``.

Rules worth knowing:

* **No graph without need.** If no input requires a gradient, or inside
  ``no_grad()``, an op's result is a detached constant: loops over constants and
  ``w.data = ...`` updates keep no history.
* **Gradients accumulate** into ``.grad`` across ``backward`` calls, as in PyTorch
  (the course overwrote); optimizers' ``reset_grad()``/``zero_grad()`` clear them.
  Only leaves (tensors not made by an op) keep ``.grad``.
* **Higher order** gradients: ``backward(create_graph=True)`` records the graph of
  the gradient computation, so ``x.grad`` can itself be differentiated.
* **dtypes** follow one policy, written down in ``needle.dtypes``: arrays keep
  their dtype, lists and scalars become float32, mixed dtypes promote as NumPy
  does (through an ``AsType`` node, so gradients come back in each input's
  dtype), Python scalars are weak, and only floating-point tensors require grad.
"""

from __future__ import annotations

import builtins
import functools
import gc
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from heapq import heappop, heappush
from typing import Any, TypeVar, cast

import numpy as np

from .backend import Array
from .backend_ndarray import NDArray
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

#: Check the gradients of needle's own shape-exact ops in ``backward()`` too, as every
#: other op's are (the test suite turns this on; see ``Op._exact``).
CHECK_ALL_GRADIENTS = False

F = TypeVar("F", bound=Callable[..., Any])
V = TypeVar("V", bound="Value")


class NeedleError(ValueError):
    """Bad input to a needle op: names the op, shapes, dtypes or devices involved."""


class NeedleIndexError(NeedleError, IndexError):
    """An index that does not fit (an ``IndexError``, so ``for row in x`` stops as in Python)."""


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
    """An operator: ``compute`` runs on backend arrays; the derivative is written once.

    Built-in ops define ``backward(xp, out_grad, node)`` against a namespace ``xp``
    (``needle.ops.gradmath``): the backend's arrays for ``backward()``, Tensor ops for
    ``backward(create_graph=True)``. Users' ops may define the course's
    ``gradient(out_grad, node)`` in Tensor ops instead; both are checked the same way.
    ``make_from_op`` sets ``self.backend`` to the inputs' backend before ``compute``.
    """

    backend: Any
    #: Whether inputs of different dtypes are promoted to one (``needle.dtypes``) before
    #: ``compute``; ops whose inputs play different roles (labels, tuples) say False.
    same_dtype = True
    #: Whether ``backward`` may return gradients of the broadcast (output) shape, which
    #: the walk then sums back to each input's shape. Other ops must match exactly.
    broadcasts = False
    #: Set per class: its derivative is ``backward`` (not a user's ``gradient``).
    _native = False
    #: Set per class: one of needle's own ops whose ``backward`` gives every gradient its
    #: input's shape and dtype (no broadcasting). ``backward()`` skips its check of them,
    #: about a sixth of a small model's backward time; the test suite, which exercises
    #: every op, runs with ``CHECK_ALL_GRADIENTS`` on to hold them to it. Users' ops, and
    #: subclasses of needle's ops, are always checked.
    _exact = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for klass in cls.__mro__:
            if klass is Op:
                cls._native = False
                break
            if "gradient" in klass.__dict__:  # a user's gradient wins over an inherited one
                cls._native = False
                break
            if "backward" in klass.__dict__:
                cls._native = True
                break
        cls._exact = cls._native and not cls.broadcasts and cls.__module__.startswith("needle.")

    def __call__(self, *args: Any) -> Any:
        raise NotImplementedError

    def compute(self, *arrays: Array) -> Array:
        """The result on the backend's arrays (``self.backend``'s methods only)."""
        raise NotImplementedError

    def backward(self, xp: Any, out_grad: Any, node: Value) -> tuple[Any, ...]:
        """One gradient per input (``None`` where none is needed), in ``xp``'s terms."""
        raise NotImplementedError(f"{type(self).__name__} has no gradient")

    def gradient(self, out_grad: Value, node: Value) -> Value | tuple[Tensor | None, ...]:
        """The gradient of each input in Tensor ops (recorded): one Tensor or None each."""
        if not self._native:
            raise NotImplementedError(f"{type(self).__name__} has no gradient")
        grads = self.backward(TENSOR_MATH, out_grad, node)
        if not self.broadcasts:
            return grads
        return tuple(_unbroadcast(TENSOR_MATH, g, x) for x, g in zip(node.inputs, grads))

    def gradient_as_tuple(self, out_grad: Value, node: Value) -> tuple[Value | None, ...]:
        out = self.gradient(out_grad, node)
        if isinstance(out, tuple):
            return out
        if isinstance(out, list):
            return tuple(out)
        return (out,)

    def vjp(self, out_grad: Array, node: Value) -> tuple[Array | None, ...]:
        """The inputs' gradients as backend arrays (``None`` where none is needed).

        ``backward()`` without ``create_graph`` gets them this way. For a user's op
        (``gradient`` only) it runs ``gradient`` on a constant and checks what came back.
        """
        if self._native:
            xp = array_math(node._device.backend)
            grads = self.backward(xp, out_grad, node)
            if not self.broadcasts:
                return grads
            return tuple(_unbroadcast(xp, g, x) for x, g in zip(node.inputs, grads))
        wrap = TensorTuple if isinstance(node, TensorTuple) else Tensor
        pulled = self.gradient_as_tuple(wrap.make_const(out_grad, device=node._device), node)
        _check_gradient_types(self, node, pulled)
        return tuple(None if g is None else g._array for g in pulled)

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
    """A node of the computational graph.

    ``_array`` holds the backend's plain array, which every op reads; ``cached_data``
    (the course's name) shows it to users with the course's ``NDArray`` methods.
    """

    __slots__ = ("op", "inputs", "_array", "requires_grad", "_device", "_seq",
                 "__weakref__")

    op: Op | None
    inputs: tuple[Value, ...]
    _array: Any
    requires_grad: bool
    _device: Device
    _seq: int  # creation number: inputs are numbered before the ops that use them

    @property
    def cached_data(self) -> Any:
        """The data as the course's ``NDArray`` (on ``cpu``: a NumPy view with its methods).

        Why a view, not the stored array itself: NumPy runs 1-1.5 µs slower per call on
        an ndarray subclass, so ops keep plain arrays and only what users read is dressed.
        The view shares memory: writing into it (``.flat[j] += eps``) changes the tensor.
        """
        a = self._array
        return a.view(NDArray) if type(a) is np.ndarray else a

    @cached_data.setter
    def cached_data(self, data: Any) -> None:
        self._array = _plain(data)

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
        # a course NDArray (a view) goes back to the plain array ops run on; inline: hot path
        value._array = data.view(np.ndarray) if type(data) is NDArray else data
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
            arrays = (first._array,)
        else:
            dtype = first._array.dtype
            arrays = collected = []  # one pass, no comprehension: this runs for every op
            for x in inputs:
                a = x._array
                if x._device is not dev or a.dtype is not dtype:  # then look closer
                    promoted = _check_inputs(op, inputs, dev)
                    if promoted is not None:
                        return cls.make_from_op(op, promoted)
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
        value._array = data
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


def _plain(data: Any) -> Any:
    """Undress a course ``NDArray`` (a view) back to the plain array that ops run on."""
    return data.view(np.ndarray) if type(data) is NDArray else data


def _check_inputs(op: Op, inputs: tuple[Value, ...], dev: Device) -> tuple[Value, ...] | None:
    """Same device for every input, or an error; inputs of mixed dtypes promoted to one
    (``dtypes.result_type``) through ``AsType`` nodes, or ``None`` when nothing changes."""
    for x in inputs:
        if x._device is not dev and x._device != dev:
            devices = ", ".join(repr(y._device) for y in inputs)
            raise NeedleError(
                f"{type(op).__name__}: inputs are on different devices ({devices}); "
                f"move them with .to(device) first"
            )
    if not op.same_dtype:
        return None
    found = [x._array.dtype for x in inputs]
    target = dtypes.result_type(*found)
    if all(d == target for d in found):
        return None
    return tuple(x if d == target else ops.astype(cast(Tensor, x), target)
                 for x, d in zip(inputs, found))


def _describe_failure(op: Op, inputs: tuple[Value, ...], exc: Exception) -> str:
    shapes = ", ".join(str(tuple(x._array.shape)) for x in inputs)
    return f"{op!r} failed on input shapes {shapes}: {exc}"


class TensorTuple(Value):
    """A tuple of Tensors produced by one op (``split``)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._array)

    def __getitem__(self, index: int) -> Tensor:
        return ops.tuple_get_item(self, index)

    def tuple(self) -> builtins.tuple[Tensor, ...]:
        return tuple(self[i] for i in range(len(self)))

    def __iter__(self):
        return iter(self.tuple())

    def __add__(self, other: TensorTuple) -> TensorTuple:
        return ops.make_tuple(*[self[i] + other[i] for i in range(len(self))])

    def detach(self) -> TensorTuple:
        return TensorTuple.make_const(self._array, device=self._device)

    @property
    def shape(self) -> builtins.tuple[builtins.tuple[int, ...], ...]:
        return tuple(a.shape for a in self._array)

    def __repr__(self) -> str:
        return f"needle.TensorTuple({self.tuple()!r})"


class Tensor(Value):
    """An n-dimensional array on a device, with reverse-mode autograd.

    ``Tensor(data, device=None, dtype=None, requires_grad=None)``: ``data`` may be a
    Tensor or a NumPy array (its dtype is kept unless given), a list or a scalar
    (float32 unless ``dtype`` says otherwise). ``requires_grad`` defaults to True for
    floating-point tensors and is always False for integer and bool ones.
    """

    __slots__ = ("grad", "__dict__")

    grad: Tensor | None

    def __init__(self, array: Any, *, device: Device | str | None = None,
                 dtype: Any = None, requires_grad: bool | None = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(_unknown_keywords(kwargs))
        dev = _as_device(device) if device is not None else None
        if isinstance(array, Tensor):
            dev = dev or array.device
            dtype = np.dtype(dtype) if dtype is not None else array.dtype
            if dev == array.device and dtype == array.dtype:
                data = array._array
            else:
                data = dev.backend.array(array.numpy(), dtype)
        else:
            dev = dev or default_device()
            dtype = dtypes.infer_dtype(array, dtype)
            data = dev.backend.array(array, dtype)
        self._seq = next(_creation)
        self.op = None
        self.inputs = ()
        self._array = data
        self.requires_grad = dtypes.resolve_requires_grad(dtype, requires_grad)
        self._device = dev
        self.grad = None

    # -- basic properties --------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def ndim(self) -> int:
        return len(self._array.shape)

    @property
    def size(self) -> int:
        return math.prod(self._array.shape)

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (shares memory on the CPU backend)."""
        return self._device.backend.to_numpy(self._array)

    def item(self) -> Any:
        """The single element as a Python number."""
        if self.size != 1:
            raise NeedleError(f"item() needs a tensor of one element, got shape {self.shape}")
        return self.numpy().item()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.numpy()
        return out.astype(dtype) if dtype is not None else out

    def __len__(self) -> int:
        shape = self._array.shape
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    # -- graph management ----------------------------------------------------
    def detach(self) -> Tensor:
        """A constant sharing this tensor's data, outside any graph."""
        return Tensor.make_const(self._array, device=self._device)

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
        self._array = value._array

    def set_(self, source: Tensor) -> Tensor:
        """Take ``source``'s data (shared, not copied) *and its device*, keeping this object.

        The one way to move a tensor in place (``Module.to``, ``load_state_dict``), so
        whoever holds it (a Module, an optimizer) sees the move; ``.data =`` refuses
        another device. Shape and dtype must match: needle never casts or reshapes
        silently. Pass ``x.to(device)`` to move, ``x.clone()`` for a private copy.
        """
        if not isinstance(source, Tensor):
            raise TypeError(f"Tensor.set_ takes a Tensor, not {type(source).__name__}")
        if source.shape != self.shape or source.dtype != self.dtype:
            raise NeedleError(f"Tensor.set_: source of shape {source.shape} and dtype "
                              f"{source.dtype} does not match {self.shape}, {self.dtype}")
        self._array = source._array
        self._device = source._device
        return self

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = dtypes.resolve_requires_grad(self.dtype, flag)
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
        """Accumulate d(self)/d(leaf) · out_grad into every leaf's ``.grad``.

        Without ``out_grad`` the seed is ones of this tensor's shape (the course's rule,
        so ``y.backward()`` on a non-scalar ``y`` differentiates ``y.sum()``).
        """
        if out_grad is None:  # ones of the output's shape, as the course seeds it
            out_grad = Tensor.make_const(
                self._device.backend.full(self._array.shape, 1.0, self.dtype),
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
        if self.size != 1:
            raise NeedleError(f"the truth value of a tensor of shape {self.shape} is ambiguous: "
                              f"use .any() or .all()")
        return bool(self.numpy())

    def __float__(self) -> float:
        return float(self.numpy())

    def __int__(self) -> int:
        return int(self.numpy())

    # -- operators -------------------------------------------------------------
    # A NumPy array or list operand becomes a constant Tensor (its dtype kept, so it
    # promotes as NumPy would); Python and NumPy scalars stay weak scalars.
    def __add__(self, other: Any) -> Tensor:
        if not isinstance(other, Value):
            other = _operand(self, other)
        if isinstance(other, Value):
            return ops.EWiseAdd()(self, other)
        return ops.AddScalar(other)(self)

    def __mul__(self, other: Any) -> Tensor:
        if not isinstance(other, Value):
            other = _operand(self, other)
        if isinstance(other, Value):
            return ops.EWiseMul()(self, other)
        return ops.MulScalar(other)(self)

    def __pow__(self, other: Any) -> Tensor:
        if not isinstance(other, Value):
            other = _operand(self, other)
        if isinstance(other, Value):
            return ops.EWisePow()(self, other)
        return ops.PowerScalar(other)(self)

    def __rpow__(self, other: Any) -> Tensor:
        # c ** x by the backend's power, not exp(x log c): right for c <= 0 (0 ** 0 = 1)
        return ops.EWisePow()(_operand(self, other, always=True), self)

    def __sub__(self, other: Any) -> Tensor:
        if not isinstance(other, Value):
            other = _operand(self, other)
        if isinstance(other, Value):
            return ops.EWiseAdd()(self, ops.Negate()(other))
        return ops.AddScalar(-other)(self)

    def __rsub__(self, other: Any) -> Tensor:
        if not isinstance(other, Value):
            other = _operand(self, other)
        if isinstance(other, Value):
            return ops.EWiseAdd()(other, ops.Negate()(self))
        return ops.AddScalar(other)(ops.Negate()(self))

    def __truediv__(self, other: Any) -> Tensor:
        if not isinstance(other, Value):
            other = _operand(self, other)
        if isinstance(other, Value):
            return ops.EWiseDiv()(self, other)
        return ops.DivScalar(other)(self)

    def __rtruediv__(self, other: Any) -> Tensor:
        if not isinstance(other, Value):
            other = _operand(self, other)
        if isinstance(other, Value):
            return ops.EWiseDiv()(other, self)
        return ops.MulScalar(other)(ops.PowerScalar(-1)(ops.astype(self, dtypes.float_dtype(
            self.dtype)) if self.dtype.kind in "biu" else self))

    def __matmul__(self, other: Tensor) -> Tensor:
        return ops.MatMul()(self, _operand(self, other, always=True))

    def __rmatmul__(self, other: Any) -> Tensor:
        return ops.MatMul()(_operand(self, other, always=True), self)

    def __neg__(self) -> Tensor:
        return ops.Negate()(self)

    def __abs__(self) -> Tensor:
        return ops.abs(self)

    def __radd__(self, other: Any) -> Tensor:
        if not isinstance(other, Value):
            other = _operand(self, other)
        if isinstance(other, Value):
            return ops.EWiseAdd()(other, self)
        return ops.AddScalar(other)(self)

    def __rmul__(self, other: Any) -> Tensor:
        if not isinstance(other, Value):
            other = _operand(self, other)
        if isinstance(other, Value):
            return ops.EWiseMul()(other, self)
        return ops.MulScalar(other)(self)

    # -- comparisons and logic: element-wise, bool results --------------------------
    def __lt__(self, other: Any) -> Tensor:
        return ops.compare("less", self, _operand(self, other))

    def __le__(self, other: Any) -> Tensor:
        return ops.compare("less_equal", self, _operand(self, other))

    def __gt__(self, other: Any) -> Tensor:
        return ops.compare("greater", self, _operand(self, other))

    def __ge__(self, other: Any) -> Tensor:
        return ops.compare("greater_equal", self, _operand(self, other))

    def __eq__(self, other: Any) -> Any:
        # ``t == None`` stays a Python bool: course code writes ``if self.bias != None``
        if other is None or not _comparable(other):
            return NotImplemented
        return ops.compare("equal", self, _operand(self, other))

    def __ne__(self, other: Any) -> Any:
        if other is None or not _comparable(other):
            return NotImplemented
        return ops.compare("not_equal", self, _operand(self, other))

    # Hash by identity: the autograd (and course code) key dicts by tensors.
    __hash__ = object.__hash__

    def eq(self, other: Any) -> Tensor:
        """Element-wise equality (the same as ``==``)."""
        return ops.compare("equal", self, _operand(self, other))

    def ne(self, other: Any) -> Tensor:
        return ops.compare("not_equal", self, _operand(self, other))

    def __and__(self, other: Any) -> Tensor:
        return ops.logical_and(self, other)

    def __or__(self, other: Any) -> Tensor:
        return ops.logical_or(self, other)

    def __xor__(self, other: Any) -> Tensor:
        return ops.logic.logical("xor", self, other)

    __rand__ = __and__
    __ror__ = __or__
    __rxor__ = __xor__

    def __invert__(self) -> Tensor:
        return ops.logical_not(self)

    def any(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.any(self, axes, keepdims, **kw)

    def all(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.all(self, axes, keepdims, **kw)

    # -- indexing and iteration --------------------------------------------------------
    def __getitem__(self, index: Any) -> Tensor:
        return ops.get_item(self, index)

    def __iter__(self):
        if not self._array.shape:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._array.shape[0]))

    # -- NumPy interoperation ------------------------------------------------------------
    # ``ndarray + tensor`` comes here (NumPy asks its operands first): answer with a Tensor,
    # so autograd is kept; ufuncs without a Tensor counterpart are refused (TypeError).
    __array_priority__ = 1000

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        fn = _UFUNCS.get(ufunc.__name__) if method == "__call__" and not kwargs else None
        if fn is None:
            return NotImplemented
        return fn(*(x if isinstance(x, Tensor) else _operand(self, x, always=True)
                    for x in inputs))

    # -- reductions (``axes=``, ``axis=`` or ``dim=``; ``keepdims=`` or ``keepdim=``) ---
    def sum(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.sum(self, axes, keepdims, **kw)

    def max(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.amax(self, axes, keepdims, **kw)

    def min(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.amin(self, axes, keepdims, **kw)

    def mean(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.mean(self, axes, keepdims, **kw)

    def var(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.var(self, axes, keepdims, **kw)

    def std(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.std(self, axes, keepdims, **kw)

    def prod(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.prod(self, axes, keepdims, **kw)

    def argmax(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.argmax(self, axes, keepdims, **kw)

    def argmin(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return ops.argmin(self, axes, keepdims, **kw)

    def logsumexp(self, axes: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        axes, keepdims = ops.reduction_args("logsumexp", axes, keepdims, **kw)
        return ops.logsumexp(self, axes, keepdims)

    def softmax(self, axis: Any = None, **kw: Any) -> Tensor:
        return ops.softmax(self, axis, **kw)

    # -- shapes ------------------------------------------------------------------------
    def broadcast_to(self, *shape: Any) -> Tensor:
        return ops.broadcast_to(self, ops.views._dims(shape))

    def reshape(self, *shape: Any) -> Tensor:
        return ops.reshape(self, ops.views._dims(shape))

    def view(self, *shape: Any) -> Tensor:
        return ops.view(self, *shape)

    def transpose(self, *axes: Any) -> Tensor:
        """``transpose()`` (the last two axes, as the course), ``transpose((i, j))`` (the
        course) or ``transpose(i, j)`` (PyTorch): swap two axes."""
        if not axes or (len(axes) == 1 and axes[0] is None):
            return ops.transpose(self, None)
        return ops.transpose(self, ops.views._dims(axes))  # type: ignore[arg-type]

    def permute(self, *axes: Any) -> Tensor:
        return ops.permute(self, ops.views._dims(axes))

    def unsqueeze(self, dim: int) -> Tensor:
        return ops.unsqueeze(self, dim)

    def squeeze(self, dim: Any = None) -> Tensor:
        return ops.squeeze(self, dim)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return ops.flatten(self, start_dim, end_dim)

    @property
    def T(self) -> Tensor:  # noqa: N802 - NumPy's name
        """The last two axes swapped (the matrix transpose; PyTorch's ``mT`` beyond 2-D)."""
        return self.transpose()

    # -- element-wise ----------------------------------------------------------------
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

    def sqrt(self) -> Tensor:
        return ops.sqrt(self)

    def sin(self) -> Tensor:
        return ops.sin(self)

    def cos(self) -> Tensor:
        return ops.cos(self)

    def abs(self) -> Tensor:
        return ops.abs(self)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        return ops.clamp(self, min, max)

    clip = clamp

    def maximum(self, other: Any) -> Tensor:
        return ops.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return ops.minimum(self, other)

    # -- copies and Python values ------------------------------------------------------
    def clone(self) -> Tensor:
        """A copy that stays in the graph (``detach()`` leaves it)."""
        return ops.clone(self)

    def tolist(self) -> Any:
        return self.numpy().tolist()

    # -- DLPack (the logic is in needle/interop.py) -----------------------------------
    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: bool | None = None) -> Any:
        """Share this Tensor's memory with ``torch/jax/np.from_dlpack`` (no copy, no graph)."""
        from .interop import dlpack_capsule

        return dlpack_capsule(self, stream, max_version, dl_device, copy)

    def __dlpack_device__(self) -> tuple[int, int]:
        from .interop import dlpack_device

        return dlpack_device(self)

def _operand(t: Tensor, other: Any, always: bool = False) -> Any:
    """The other operand of ``t``'s operator: Tensors and weak scalars as they are, arrays
    and lists as constant Tensors on ``t``'s device (``always``: scalars too)."""
    if isinstance(other, Value):
        return other
    if not always and type(other) in (int, float, bool):
        return other
    if isinstance(other, np.generic) and not always:
        return other.item()  # NumPy scalars are weak too (the course computes with them)
    if type(other) in (int, float, bool) or isinstance(other, np.generic):
        value = other.item() if isinstance(other, np.generic) else other
        dtype = t.dtype if not (type(value) is float and t.dtype.kind in "biu") \
            else dtypes.DEFAULT_FLOAT
        return Tensor.make_const(t._device.backend.full((), value, dtype), device=t._device)
    if isinstance(other, (np.ndarray, list, tuple)) or hasattr(other, "__array__"):
        return Tensor(other, device=t._device, requires_grad=False)
    raise TypeError(f"unsupported operand: Tensor and {type(other).__name__}")


def _comparable(other: Any) -> bool:
    return isinstance(other, (Value, int, float, bool, np.generic, np.ndarray, list, tuple))


_TENSOR_KEYWORDS = ("device", "dtype", "requires_grad")


def _unknown_keywords(kwargs: dict[str, Any]) -> str:
    """Name the unknown keywords of ``Tensor(...)`` (a typo must not be silently ignored)."""
    import difflib

    parts = []
    for key in kwargs:
        close = difflib.get_close_matches(key, _TENSOR_KEYWORDS, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"Tensor() got unknown keyword argument(s) {', '.join(parts)}; "
            f"it takes {', '.join(_TENSOR_KEYWORDS)}")

def compute_gradient_of_variables(output: Tensor, out_grad: Tensor,
                                  create_graph: bool = False) -> None:
    """Reverse-mode AD: give every leaf that requires grad its ``.grad``.

    Gradients are computed without recording a graph unless ``create_graph``.
    """
    global _grad_enabled
    if isinstance(out_grad, Value) and out_grad.dtype != output.dtype:
        out_grad = ops.astype(out_grad, output.dtype)  # gradients travel in the output's dtype
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

    Each op's ``backward`` runs on backend arrays (``array_math``), or on Tensors
    (``TENSOR_MATH``) under ``create_graph``. Here, once for every op, a gradient of
    the broadcast shape is summed back to its input's shape, and every gradient is
    checked against its input (a user's op with a wrong shape is named, not absorbed),
    except those of needle's shape-exact ops (``Op._exact``).
    """
    grads: dict[Value, Any] = {output: out_grad if create_graph else out_grad._array}
    leaves = [output] if output.op is None else []
    heap = [] if output.op is None else [(-output._seq, output)]
    xp: Any = TENSOR_MATH
    backend = None
    while heap:
        node = heappop(heap)[1]
        grad = grads.pop(node)
        if type(grad) is TupleGrad:  # parts of a split: zeros for the parts nobody used
            grad = grad.dense(node)
        op: Any = node.op  # never None: only nodes made by an op enter the heap
        pulled: tuple[Any, ...]
        if op._native:
            if not create_graph and op.backend is not backend:
                backend = op.backend
                xp = array_math(backend)
            pulled = op.backward(xp, grad, node)
        elif create_graph:
            pulled = op.gradient_as_tuple(grad, node)
            _check_gradient_types(op, node, pulled)
        else:
            pulled = op.vjp(grad, node)
        check = CHECK_ALL_GRADIENTS or not op._exact
        for inp, g in zip(node.inputs, pulled):
            if g is not None and inp.requires_grad:
                if check:  # each gradient must look like its input (custom ops!)
                    d = inp._array
                    if type(d) is not tuple and (g.shape != d.shape or (
                            g.dtype is not d.dtype and g.dtype != d.dtype)):
                        g = _fit(op, node, inp, g, TENSOR_MATH if create_graph
                                 else array_math(inp._device.backend))
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
                    grads[inp] = _add_arrays(inp, old, g)
    for leaf in leaves:
        if isinstance(leaf, Tensor):
            grad = grads[leaf]
            if not create_graph:
                grad = Tensor.make_const(grad, device=leaf._device)
            leaf.grad = grad if leaf.grad is None else leaf.grad + grad


def _unbroadcast(xp: Any, g: Any, inp: Value) -> Any:
    """``g`` summed over the axes that broadcasting added to ``inp`` (if any)."""
    if g is None or type(inp._array) is tuple or g.shape == inp._array.shape:
        return g
    return xp.sum_to_shape(g, tuple(inp._array.shape))


def _fit(op: Op, node: Value, inp: Value, g: Any, xp: Any) -> Any:
    """A gradient that does not look like its input: un-broadcast it if ``op`` broadcasts,
    else (or if that does not make it fit) name the op."""
    d = inp._array
    shape = tuple(d.shape)
    if op.broadcasts and tuple(g.shape) != shape and \
            broadcast_axes(tuple(g.shape), shape) is not None:
        g = xp.sum_to_shape(g, shape)
    if tuple(g.shape) != shape or g.dtype != d.dtype:
        _gradient_mismatch(op, node, inp, g)
    return g


def _check_gradient_types(op: Op, node: Value, grads: tuple[Any, ...]) -> None:
    """``gradient`` must return one Tensor (or None) per input, on the input's device."""
    if len(grads) < len(node.inputs):
        raise NeedleError(f"{type(op).__name__}.gradient returned {len(grads)} gradients for "
                          f"{len(node.inputs)} inputs")
    for i, (inp, g) in enumerate(zip(node.inputs, grads)):
        if g is None:
            continue
        if not isinstance(g, Value):
            raise NeedleError(
                f"{type(op).__name__}.gradient returned a {type(g).__module__}."
                f"{type(g).__name__} for input {i}; gradients must be Tensors built from "
                f"Tensor ops (wrap arrays with Tensor.make_const, or compute with ndl ops)")
        if g._device != inp._device:
            raise NeedleError(f"{type(op).__name__}.gradient returned a gradient on {g._device} "
                              f"for input {i}, which is on {inp._device}")


def _gradient_mismatch(op: Op, node: Value, inp: Value, g: Any) -> None:
    i = next(k for k, x in enumerate(node.inputs) if x is inp)
    shape, dtype = tuple(inp._array.shape), inp._array.dtype
    hint = (" (a broadcasting op must sum its gradient back to the input's shape: "
            "ops.sum_to_shape)" if tuple(g.shape) != shape else "")
    raise NeedleError(f"{type(op).__name__}.gradient returned a gradient of shape "
                      f"{tuple(g.shape)} and dtype {g.dtype} for input {i}, which has shape "
                      f"{shape} and dtype {dtype}{hint}")


def _add_arrays(inp: Value, a: Any, b: Any) -> Any:
    """a + b for gradient arrays of ``inp``, element-wise for the tuples of a TensorTuple."""
    backend = inp._device.backend
    if type(a) is TupleGrad and type(b) is TupleGrad:
        for i, part in b.items():  # a is the walk's own accumulator: updating it is safe
            a[i] = backend.add(a[i], part) if i in a else part
        return a
    if type(a) is TupleGrad or type(b) is TupleGrad:
        a, b = (x.dense(inp) if type(x) is TupleGrad else x for x in (a, b))
    if type(a) is tuple:
        return tuple(backend.add(x, y) for x, y in zip(a, b))
    return backend.add(a, b)


class TupleGrad(dict[int, Any]):
    """The gradient of a TensorTuple as ``{part index: array}`` (what ``TupleGetItem``
    sends back in ``backward()``); parts missing from it are zero.

    Why: a sequence split into T parts, each used once, would otherwise send back T
    tuples of T arrays (T - 1 of them zeros) and add them up: T² arrays instead of T.
    """

    __slots__ = ()

    def dense(self, tup: Value) -> tuple[Any, ...]:
        backend = tup._device.backend
        return tuple(self[i] if i in self else backend.full(tuple(a.shape), 0.0, a.dtype)
                     for i, a in enumerate(tup._array))


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
from . import dtypes, ops  # noqa: E402
from .ops.gradmath import TENSOR_MATH, array_math, broadcast_axes  # noqa: E402

# NumPy ufuncs that ``ndarray ∘ Tensor`` may reach, answered by Tensor ops (see __array_ufunc__).
_UFUNCS: dict[str, Callable[..., Any]] = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b, "divide": lambda a, b: a / b,
    "true_divide": lambda a, b: a / b, "power": lambda a, b: a ** b,
    "matmul": lambda a, b: a @ b, "negative": lambda a: -a, "absolute": lambda a: abs(a),
    "maximum": lambda a, b: ops.maximum(a, b), "minimum": lambda a, b: ops.minimum(a, b),
    "exp": lambda a: ops.exp(a), "log": lambda a: ops.log(a), "sqrt": lambda a: ops.sqrt(a),
    "tanh": lambda a: ops.tanh(a), "sin": lambda a: ops.sin(a), "cos": lambda a: ops.cos(a),
    "equal": lambda a, b: a == b, "not_equal": lambda a, b: a != b,
    "less": lambda a, b: a < b, "less_equal": lambda a, b: a <= b,
    "greater": lambda a, b: a > b, "greater_equal": lambda a, b: a >= b,
    "logical_and": lambda a, b: a & b, "logical_or": lambda a, b: a | b,
    "logical_not": lambda a: ~a, "bitwise_and": lambda a, b: a & b,
    "bitwise_or": lambda a, b: a | b, "invert": lambda a: ~a,
}
