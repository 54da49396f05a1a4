"""Recurrent layers: ``RNNCell``, ``RNN``, ``LSTMCell``, ``LSTM`` (the course's hw4) and
``GRUCell``, ``GRU``.

Sequences are seq-first, ``(seq_len, batch, features)``, unless ``batch_first=True``
(``(batch, seq_len, features)``); hidden states are always
``(num_layers, batch, hidden_size)``, as in PyTorch. Every weight is uniform(-k, k)
with k = √(1/hidden_size), drawn per layer in the order W_ih, W_hh, bias_ih, bias_hh
so seeded runs reproduce the course's numbers. Weights are stored ``(in, gates·hidden)``:
the cell computes x W_ih + h W_hh + b, and a PyTorch ``weight_ih_l0`` loads transposed.
"""

from __future__ import annotations

import math
from typing import Any

from needle import NeedleError, Tensor, ops

from .. import init
from .module import Module, Parameter, check_input, describe

_NONLINEARITIES = {"tanh": ops.tanh, "relu": ops.relu}


def _uniform(k: float, *shape: int, device: Any, dtype: Any) -> Parameter:
    return Parameter(init.rand(*shape, low=-k, high=k, device=device, dtype=dtype))


class _Cell(Module):
    """Parameters and affine steps shared by the cells (``gates`` blocks of hidden_size).

    A cell's step is ``_step(xw, h)``, where ``xw = _input(x, bias)`` is the input's part
    ``x W_ih + b``: ``_Stacked`` prepares the bias once per sequence, not once a step. Both
    products are one fused ``ops.linear`` each, ``h W_hh + xw`` taking xw as its (full-shape)
    bias. A missing state is zeros, as in the course: W_hh then gets a (zero) gradient too.
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool, device: Any,
                 dtype: Any) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        k = math.sqrt(1.0 / hidden_size)
        width = self.gates * hidden_size
        self.W_ih = _uniform(k, input_size, width, device=device, dtype=dtype)
        self.W_hh = _uniform(k, hidden_size, width, device=device, dtype=dtype)
        self.bias_ih = _uniform(k, width, device=device, dtype=dtype) if bias else None
        self.bias_hh = _uniform(k, width, device=device, dtype=dtype) if bias else None

    def forward(self, x: Tensor, h: Any = None) -> Any:
        check_input(self, x, 2, 1, self.input_size, "(N, {})")
        state = self._zero_state(x) if h is None else h
        self._check_state(x, state)
        return self._step(self._input(x, self._input_bias()), state)

    def _check_state(self, x: Tensor, h: Tensor) -> None:
        if not isinstance(h, Tensor) or h.shape != (x.shape[0], self.hidden_size):
            got = h.shape if isinstance(h, Tensor) else type(h).__name__
            raise NeedleError(f"{describe(self)}: hidden state must have shape "
                              f"{(x.shape[0], self.hidden_size)}, got {got}")

    def _zero_state(self, x: Tensor) -> Any:
        return init.zeros(x.shape[0], self.hidden_size, device=x.device, dtype=x.dtype)

    # Subclasses: the bias added to x W_ih (both biases, by default), and the step.
    def _input_bias(self) -> Tensor | None:
        return None if self.bias_ih is None else self.bias_ih + self.bias_hh

    def _input(self, x: Tensor, bias: Tensor | None) -> Tensor:
        return ops.linear(x, self.W_ih, bias)

    def _step(self, xw: Tensor, h: Any) -> Any:
        raise NotImplementedError

    def _gate(self, gates: Tensor, k: int) -> Tensor:
        """Block ``k`` (N, hidden) of ``gates`` (N, gates·hidden)."""
        return gates[:, k * self.hidden_size:(k + 1) * self.hidden_size]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class RNNCell(_Cell):
    """An Elman RNN step.

    .. math::

        h' = \\sigma(x W_{ih} + b_{ih} + h W_{hh} + b_{hh})

    with σ tanh or relu. Shapes: x ``(N, input_size)``, h and h' ``(N, hidden_size)``;
    a missing h is zeros.

    Args:
        input_size (int): features of x.
        hidden_size (int): features of h.
        bias (bool, optional): learn ``bias_ih`` and ``bias_hh``. Default: ``True``.
        nonlinearity (str, optional): ``"tanh"`` or ``"relu"``. Default: ``"tanh"``.
        device (Device, optional): where the weights live. Default: the default device.
        dtype (str, optional): weight dtype. Default: ``"float32"``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> cell = nn.RNNCell(3, 4)
        >>> cell(ndl.init.randn(2, 3)).shape
        (2, 4)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = "float32") -> None:
        if nonlinearity not in _NONLINEARITIES:
            raise NeedleError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', "
                              f"got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        return super().forward(x, h)

    def _step(self, xw: Tensor, h: Tensor) -> Tensor:
        return _NONLINEARITIES[self.nonlinearity](ops.linear(h, self.W_hh, xw))


class LSTMCell(_Cell):
    """A long short-term memory step, gates in PyTorch's order i, f, g, o.

    .. math::

        i, f, g, o &= \\text{split}(x W_{ih} + b_{ih} + h W_{hh} + b_{hh}) \\\\
        c' &= \\sigma(f) \\odot c + \\sigma(i) \\odot \\tanh(g) \\\\
        h' &= \\sigma(o) \\odot \\tanh(c')

    Shapes: x ``(N, input_size)``; h, c, h', c' ``(N, hidden_size)``; W_ih
    ``(input_size, 4·hidden_size)``, W_hh ``(hidden_size, 4·hidden_size)``. A missing
    ``(h, c)`` is zeros. Returns ``(h', c')``.

    Args:
        input_size (int): features of x.
        hidden_size (int): features of h and c.
        bias (bool, optional): learn ``bias_ih`` and ``bias_hh``. Default: ``True``.
        device (Device, optional): where the weights live. Default: the default device.
        dtype (str, optional): weight dtype. Default: ``"float32"``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> h, c = nn.LSTMCell(3, 4)(ndl.init.randn(2, 3))
        >>> h.shape, c.shape
        ((2, 4), (2, 4))
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = "float32") -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, x: Tensor, h: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor]:
        return super().forward(x, h)

    def _zero_state(self, x: Tensor) -> Any:
        return super()._zero_state(x), super()._zero_state(x)

    def _check_state(self, x: Tensor, h: Any) -> None:
        if not isinstance(h, (tuple, list)) or len(h) != 2:
            raise NeedleError(f"{describe(self)}: the state must be a pair (h, c), "
                              f"got {type(h).__name__}")
        super()._check_state(x, h[0])
        super()._check_state(x, h[1])

    def _step(self, xw: Tensor, h: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h0, c0 = h
        gates = ops.linear(h0, self.W_hh, xw)
        # sigmoid and tanh once each over all four blocks, then the blocks each needs:
        # fewer ops than a nonlinearity per block, which is what a step's time is made of
        s, t = ops.sigmoid(gates), ops.tanh(gates)
        i, f, g, o = self._gate(s, 0), self._gate(s, 1), self._gate(t, 2), self._gate(s, 3)
        c = f * c0 + i * g
        return o * ops.tanh(c), c


class GRUCell(_Cell):
    """A gated recurrent unit step, gates in PyTorch's order r, z, n.

    .. math::

        r &= \\sigma(x W_{ir} + b_{ir} + h W_{hr} + b_{hr}) \\\\
        z &= \\sigma(x W_{iz} + b_{iz} + h W_{hz} + b_{hz}) \\\\
        n &= \\tanh(x W_{in} + b_{in} + r \\odot (h W_{hn} + b_{hn})) \\\\
        h' &= (1 - z) \\odot n + z \\odot h

    The blocks r, z, n sit side by side in ``W_ih (input_size, 3·hidden_size)``,
    ``W_hh (hidden_size, 3·hidden_size)`` and the biases ``(3·hidden_size,)``, so
    PyTorch's ``weight_ih`` is ``W_ih`` transposed. Shapes: x ``(N, input_size)``,
    h and h' ``(N, hidden_size)``; a missing h is zeros.

    Args:
        input_size (int): features of x.
        hidden_size (int): features of h.
        bias (bool, optional): learn ``bias_ih`` and ``bias_hh``. Default: ``True``.
        device (Device, optional): where the weights live. Default: the default device.
        dtype (str, optional): weight dtype. Default: ``"float32"``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> cell = nn.GRUCell(3, 4)
        >>> cell(ndl.init.randn(2, 3)).shape
        (2, 4)
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = "float32") -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        return super().forward(x, h)

    def _input_bias(self) -> Tensor | None:
        return self.bias_ih  # n needs h's part (and its bias) apart from x's: no sum

    def _step(self, xw: Tensor, h: Tensor) -> Tensor:
        hw = ops.linear(h, self.W_hh, self.bias_hh)
        s = ops.sigmoid(xw + hw)  # over all three blocks: fewer ops than slicing r, z first
        r, z = self._gate(s, 0), self._gate(s, 1)
        n = ops.tanh(self._gate(xw, 2) + r * self._gate(hw, 2))
        return n + z * (h - n)  # = (1 - z) n + z h, one op fewer


class _Stacked(Module):
    """``num_layers`` cells run over a sequence, each layer reading the one below.

    Subclasses name their cell class and the attribute holding the cells (the course's
    ``rnn_cells``/``lstm_cells``), and say how a layer's state is split and stacked.
    """

    cell_type: type[_Cell]
    cells_name: str

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool,
                 batch_first: bool, device: Any, dtype: Any, **cell_args: Any) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise NeedleError(f"{name}: num_layers must be an int >= 1, got {num_layers!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = bool(batch_first)
        cells = [self.cell_type(input_size if i == 0 else hidden_size, hidden_size, bias,
                                device=device, dtype=dtype, **cell_args)
                 for i in range(num_layers)]
        setattr(self, self.cells_name, cells)

    def forward(self, X: Tensor, h: Any = None) -> tuple[Tensor, Any]:  # noqa: N803
        layout = "(N, seq_len, {})" if self.batch_first else "(seq_len, N, {})"
        check_input(self, X, 3, 2, self.input_size, layout)
        time = 1 if self.batch_first else 0
        batch = X.shape[1 - time]
        states = [None] * self.num_layers if h is None else self._layer_states(h, batch)
        # indexing, not split: each slice's gradient is one scatter, where split's pieces
        # each send back a tuple of zeros for every other step
        inputs = [X[:, t] if time else X[t] for t in range(X.shape[time])]
        finals = []
        for cell, state in zip(getattr(self, self.cells_name), states):
            state = cell._zero_state(inputs[0]) if state is None else state
            bias = cell._input_bias()  # once per sequence, not once a step
            outputs = []
            for x_t in inputs:
                state = cell._step(cell._input(x_t, bias), state)
                outputs.append(self._output(state))
            finals.append(state)
            inputs = outputs
        return ops.stack(inputs, time), self._final(finals)

    # One Tensor per layer (RNN, GRU); LSTM overrides these for its (h, c) pairs.
    def _layer_states(self, h: Tensor, batch: int) -> list[Any]:
        return self._split_layers(h, batch)

    def _output(self, state: Any) -> Tensor:
        return state

    def _final(self, states: list[Any]) -> Any:
        return ops.stack(states, 0)

    def _split_layers(self, h: Any, batch: int) -> list[Tensor]:
        shape = (self.num_layers, batch, self.hidden_size)
        if not isinstance(h, Tensor) or h.shape != shape:
            got = h.shape if isinstance(h, Tensor) else type(h).__name__
            raise NeedleError(f"{type(self).__name__}: initial state must have shape "
                              f"(num_layers, batch, hidden_size) = {shape}, got {got}")
        return list(ops.split(h, 0))

    def extra_repr(self) -> str:
        first = ", batch_first=True" if self.batch_first else ""
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}{first}"


class RNN(_Stacked):
    """A stack of ``num_layers`` :class:`RNNCell` layers run over a sequence.

    ``forward(X, h0=None)`` returns ``(output, h_n)``: the last layer's h at every step
    and every layer's last h. Shapes: X ``(seq_len, N, input_size)`` (``(N, seq_len,
    input_size)`` with ``batch_first``), output ``(seq_len, N, hidden_size)`` (or
    ``(N, seq_len, hidden_size)``), h0 and h_n ``(num_layers, N, hidden_size)``.

    Args:
        input_size (int): features of X.
        hidden_size (int): features of each layer's h.
        num_layers (int, optional): layers stacked. Default: ``1``.
        bias (bool, optional): learn biases. Default: ``True``.
        nonlinearity (str, optional): ``"tanh"`` or ``"relu"``. Default: ``"tanh"``.
        device (Device, optional): where the weights live. Default: the default device.
        dtype (str, optional): weight dtype. Default: ``"float32"``.
        batch_first (bool, optional): X and output are batch-major. Default: ``False``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> out, h_n = nn.RNN(3, 4, num_layers=2)(ndl.init.randn(5, 2, 3))
        >>> out.shape, h_n.shape
        ((5, 2, 4), (2, 2, 4))
    """

    cell_type = RNNCell
    cells_name = "rnn_cells"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = "float32",
                 batch_first: bool = False) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, device, dtype,
                         nonlinearity=nonlinearity)

    def forward(self, X: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:  # noqa: N803
        return super().forward(X, h0)


class LSTM(_Stacked):
    """A stack of ``num_layers`` :class:`LSTMCell` layers run over a sequence.

    ``forward(X, h=None)`` with ``h = (h0, c0)`` returns ``(output, (h_n, c_n))``.
    Shapes: X ``(seq_len, N, input_size)`` (``(N, seq_len, input_size)`` with
    ``batch_first``), output ``(seq_len, N, hidden_size)`` (or batch-major), h0, c0,
    h_n, c_n ``(num_layers, N, hidden_size)``.

    Args:
        input_size (int): features of X.
        hidden_size (int): features of each layer's h and c.
        num_layers (int, optional): layers stacked. Default: ``1``.
        bias (bool, optional): learn biases. Default: ``True``.
        device (Device, optional): where the weights live. Default: the default device.
        dtype (str, optional): weight dtype. Default: ``"float32"``.
        batch_first (bool, optional): X and output are batch-major. Default: ``False``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> out, (h_n, c_n) = nn.LSTM(3, 4, batch_first=True)(ndl.init.randn(2, 5, 3))
        >>> out.shape, c_n.shape
        ((2, 5, 4), (1, 2, 4))
    """

    cell_type = LSTMCell
    cells_name = "lstm_cells"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 device: Any = None, dtype: Any = "float32", batch_first: bool = False) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, device, dtype)

    def forward(self, X: Tensor, h: tuple[Tensor, Tensor] | None = None  # noqa: N803
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        return super().forward(X, h)

    def _layer_states(self, h: Any, batch: int) -> list[Any]:
        if not isinstance(h, (tuple, list)) or len(h) != 2:
            raise NeedleError(f"LSTM: the initial state must be a pair (h0, c0), "
                              f"got {type(h).__name__}")
        return list(zip(self._split_layers(h[0], batch), self._split_layers(h[1], batch)))

    def _output(self, state: Any) -> Tensor:
        return state[0]

    def _final(self, states: list[Any]) -> Any:
        return ops.stack([s[0] for s in states], 0), ops.stack([s[1] for s in states], 0)


class GRU(_Stacked):
    """A stack of ``num_layers`` :class:`GRUCell` layers run over a sequence.

    ``forward(X, h0=None)`` returns ``(output, h_n)``: the last layer's h at every step
    and every layer's last h. Shapes: X ``(seq_len, N, input_size)`` (``(N, seq_len,
    input_size)`` with ``batch_first``), output ``(seq_len, N, hidden_size)`` (or
    batch-major), h0 and h_n ``(num_layers, N, hidden_size)``. The cells are kept in
    ``gru_cells``; ``gru_cells.{l}.W_ih`` is PyTorch's ``weight_ih_l{l}`` transposed.

    Args:
        input_size (int): features of X.
        hidden_size (int): features of each layer's h.
        num_layers (int, optional): layers stacked. Default: ``1``.
        bias (bool, optional): learn biases. Default: ``True``.
        device (Device, optional): where the weights live. Default: the default device.
        dtype (str, optional): weight dtype. Default: ``"float32"``.
        batch_first (bool, optional): X and output are batch-major. Default: ``False``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> out, h_n = nn.GRU(3, 4, num_layers=2)(ndl.init.randn(5, 2, 3))
        >>> out.shape, h_n.shape
        ((5, 2, 4), (2, 2, 4))
    """

    cell_type = GRUCell
    cells_name = "gru_cells"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 device: Any = None, dtype: Any = "float32", batch_first: bool = False) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, device, dtype)

    def forward(self, X: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:  # noqa: N803
        return super().forward(X, h0)
