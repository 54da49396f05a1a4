"""Recurrent layers (the course's hw4): ``RNNCell``, ``RNN``, ``LSTMCell``, ``LSTM``.

Sequences are seq-first: ``(seq_len, batch, features)``; hidden states are
``(num_layers, batch, hidden_size)``. Every weight is uniform(-k, k) with
k = √(1/hidden_size), drawn per layer in the order W_ih, W_hh, bias_ih, bias_hh so
seeded runs reproduce the course's numbers. Weights are stored ``(in, out)``: the
cell computes x W_ih + h W_hh + b.
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
    """Parameters and affine step shared by the cells (``gates`` blocks of hidden_size).

    A missing state is zeros, as in the course: W_hh then gets a (zero) gradient too.
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

    def _affine(self, x: Tensor, h: Tensor) -> Tensor:
        check_input(self, x, 2, 1, self.input_size, "(N, {})")
        if h.shape != (x.shape[0], self.hidden_size):
            raise NeedleError(f"{describe(self)}: hidden state must have shape "
                              f"{(x.shape[0], self.hidden_size)}, got {h.shape}")
        out = x @ self.W_ih + h @ self.W_hh
        if self.bias_ih is not None:
            width = self.gates * self.hidden_size
            b = (self.bias_ih + self.bias_hh).reshape((1, width))
            out = out + b.broadcast_to(out.shape)
        return out

    def _zeros(self, x: Tensor) -> Tensor:
        return init.zeros(x.shape[0], self.hidden_size, device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class RNNCell(_Cell):
    """One step of an Elman RNN: ``h' = σ(x W_ih + b_ih + h W_hh + b_hh)``, σ tanh or relu.

    Every weight is uniform(-k, k) with k = √(1/hidden_size); a missing ``h`` is zeros.

    Shapes: ``x`` ``(N, input_size)``, ``h`` and the output ``(N, hidden_size)``;
    ``W_ih`` ``(input_size, hidden_size)``, ``W_hh`` ``(hidden_size, hidden_size)``.

    Args:
        input_size (int): the features of ``x``.
        hidden_size (int): the features of ``h``.
        bias (bool): use ``b_ih`` and ``b_hh``. Default: ``True``.
        nonlinearity (str): ``"tanh"`` or ``"relu"``. Default: ``"tanh"``.
        device (Device | None): where the parameters live. Default: the default device.
        dtype (str): the parameters' dtype. Default: ``"float32"``.

    Examples:
        >>> cell = ndl.nn.RNNCell(3, 5)
        >>> cell(ndl.Tensor(np.ones((2, 3)))).shape
        (2, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = "float32") -> None:
        if nonlinearity not in _NONLINEARITIES:
            raise NeedleError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', "
                              f"got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        h = self._zeros(x) if h is None else h
        return _NONLINEARITIES[self.nonlinearity](self._affine(x, h))


class LSTMCell(_Cell):
    """One LSTM step with gates i, f, g, o (PyTorch's order).

    ``i, f, o = σ(·)``, ``g = tanh(·)`` of the four blocks of ``x W_ih + b_ih + h W_hh + b_hh``;
    ``c' = f · c + i · g``; ``h' = o · tanh(c')``. A missing ``(h, c)`` is zeros.

    Shapes: ``x`` ``(N, input_size)``; ``h``, ``c`` and both outputs ``(N, hidden_size)``;
    ``W_ih`` ``(input_size, 4·hidden_size)``, ``W_hh`` ``(hidden_size, 4·hidden_size)``.

    Args:
        input_size (int): the features of ``x``.
        hidden_size (int): the features of ``h`` and ``c``.
        bias (bool): use ``b_ih`` and ``b_hh``. Default: ``True``.
        device (Device | None): where the parameters live. Default: the default device.
        dtype (str): the parameters' dtype. Default: ``"float32"``.

    Examples:
        >>> cell = ndl.nn.LSTMCell(3, 5)
        >>> h, c = cell(ndl.Tensor(np.ones((2, 3))))
        >>> h.shape, c.shape
        ((2, 5), (2, 5))
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = "float32") -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, x: Tensor, h: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor]:
        h0, c0 = (self._zeros(x), self._zeros(x)) if h is None else h
        gates = self._affine(x, h0)
        i, f, g, o = ops.split(gates.reshape((x.shape[0], 4, self.hidden_size)), 1)
        i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
        c = f * c0 + i * g
        return o * ops.tanh(c), c


def _split_layers(name: str, h: Tensor, num_layers: int, batch: int, hidden: int) -> list:
    if h.shape != (num_layers, batch, hidden):
        raise NeedleError(f"{name}: initial state must have shape (num_layers, batch, "
                          f"hidden_size) = {(num_layers, batch, hidden)}, got {h.shape}")
    return list(ops.split(h, 0))


class RNN(Module):
    """A stack of ``num_layers`` RNN cells run over a sequence (seq-first, as in the course).

    Layer ``l`` at time ``t``: ``h_t^l = σ(h_t^(l-1) W_ih + b_ih + h_(t-1)^l W_hh + b_hh)``,
    with ``h_t^0 = x_t``. The cells are kept in ``rnn_cells``.

    Shapes: ``X`` ``(seq_len, batch, input_size)``, ``h0`` ``(num_layers, batch, hidden_size)``
    (zeros if omitted); ``forward(X, h0=None)`` returns the last layer's outputs
    ``(seq_len, batch, hidden_size)`` and ``h_n`` ``(num_layers, batch, hidden_size)``.

    Args:
        input_size (int): the features of each ``x_t``.
        hidden_size (int): the features of each hidden state.
        num_layers (int): cells stacked on each other. Default: ``1``.
        bias (bool): use biases. Default: ``True``.
        nonlinearity (str): ``"tanh"`` or ``"relu"``. Default: ``"tanh"``.
        device (Device | None): where the parameters live. Default: the default device.
        dtype (str): the parameters' dtype. Default: ``"float32"``.

    Examples:
        >>> rnn = ndl.nn.RNN(3, 5, num_layers=2)
        >>> out, h_n = rnn(ndl.Tensor(np.ones((7, 2, 3))))
        >>> out.shape, h_n.shape
        ((7, 2, 5), (2, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = "float32") -> None:
        super().__init__()
        if num_layers < 1:
            raise NeedleError(f"RNN: num_layers must be >= 1, got {num_layers}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.rnn_cells = [RNNCell(input_size if i == 0 else hidden_size, hidden_size, bias,
                                  nonlinearity, device=device, dtype=dtype)
                          for i in range(num_layers)]

    def forward(self, X: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:  # noqa: N803
        check_input(self, X, 3, 2, self.input_size, "(seq_len, N, {})")
        seq_len, batch = X.shape[0], X.shape[1]
        hs = [None] * self.num_layers if h0 is None else \
            _split_layers("RNN", h0, self.num_layers, batch, self.hidden_size)
        inputs = list(ops.split(X, 0))
        h_n = []
        for cell, h in zip(self.rnn_cells, hs):
            outputs = []
            for t in range(seq_len):
                h = cell(inputs[t], h)
                outputs.append(h)
            h_n.append(h)
            inputs = outputs
        return ops.stack(inputs, 0), ops.stack(h_n, 0)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"


class LSTM(Module):
    """A stack of ``num_layers`` LSTM cells run over a sequence (seq-first, as in the course).

    Each layer runs ``LSTMCell`` over time on the previous layer's outputs; the cells are
    kept in ``lstm_cells``.

    Shapes: ``X`` ``(seq_len, batch, input_size)``; the state ``(h0, c0)``, each
    ``(num_layers, batch, hidden_size)`` (zeros if omitted); ``forward(X, h=None)`` returns
    the last layer's outputs ``(seq_len, batch, hidden_size)`` and ``(h_n, c_n)``.

    Args:
        input_size (int): the features of each ``x_t``.
        hidden_size (int): the features of each hidden and cell state.
        num_layers (int): cells stacked on each other. Default: ``1``.
        bias (bool): use biases. Default: ``True``.
        device (Device | None): where the parameters live. Default: the default device.
        dtype (str): the parameters' dtype. Default: ``"float32"``.

    Examples:
        >>> lstm = ndl.nn.LSTM(3, 5, num_layers=2)
        >>> out, (h_n, c_n) = lstm(ndl.Tensor(np.ones((7, 2, 3))))
        >>> out.shape, h_n.shape, c_n.shape
        ((7, 2, 5), (2, 2, 5), (2, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 device: Any = None, dtype: Any = "float32") -> None:
        super().__init__()
        if num_layers < 1:
            raise NeedleError(f"LSTM: num_layers must be >= 1, got {num_layers}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm_cells = [LSTMCell(input_size if i == 0 else hidden_size, hidden_size, bias,
                                    device=device, dtype=dtype)
                           for i in range(num_layers)]

    def forward(self, X: Tensor, h: tuple[Tensor, Tensor] | None = None  # noqa: N803
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        check_input(self, X, 3, 2, self.input_size, "(seq_len, N, {})")
        seq_len, batch = X.shape[0], X.shape[1]
        if h is None:
            states: list = [None] * self.num_layers
        else:
            hs = _split_layers("LSTM", h[0], self.num_layers, batch, self.hidden_size)
            cs = _split_layers("LSTM", h[1], self.num_layers, batch, self.hidden_size)
            states = list(zip(hs, cs))
        inputs = list(ops.split(X, 0))
        h_n, c_n = [], []
        for cell, state in zip(self.lstm_cells, states):
            outputs = []
            for t in range(seq_len):
                state = cell(inputs[t], state)
                outputs.append(state[0])
            h_n.append(state[0])
            c_n.append(state[1])
            inputs = outputs
        return ops.stack(inputs, 0), (ops.stack(h_n, 0), ops.stack(c_n, 0))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
