"""The course's (hw4_extra) decoder-only Transformer, built from Tensor ops only.

``MultiHeadAttention`` is the parameter-free activation softmax(Q Kᵀ / √D) V;
``AttentionLayer`` adds the prenorms and projections; ``TransformerLayer`` is one
prenorm residual block (attention, then a two-layer MLP); ``Transformer`` stacks them
after a learned positional embedding. Parameters are created in the course's order,
so ``np.random.seed(n)`` reproduces its numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from needle import NeedleError, Tensor, backend_ndarray, ops

from .. import init
from .activation import ReLU
from .container import Sequential
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .module import Module
from .normalization import LayerNorm1d

# The course masks with the most negative float32 rather than -inf: exp() of it is an
# exact 0, and a row with every key masked still gets a finite (uniform) softmax.
_MASKED = -float(np.finfo(np.float32).max)


def _check_shape(who: str, name: str, x: Tensor, ndim: int, layout: str) -> None:
    if len(x.shape) != ndim:
        raise NeedleError(f"{who}: {name} must have shape {layout}, got shape {x.shape}")


class MultiHeadAttention(Module):
    """The attention activation, without parameters: scaled dot products, softmax, dropout.

    ``probs = Dropout(softmax(q kᵀ / √D + mask))`` and ``result = probs v``, over the last
    two axes with the leading ones batched. The mask is 0 where query i may see key j and
    the most negative float32 elsewhere: with ``causal=True`` query i sees only keys
    j ≤ i + (Tk - Tq) (the past and itself); without it, every key.

    Shapes: q ``(B, H, Tq, D)``, k ``(B, H, Tk, D)``, v ``(B, H, Tk, Dv)``. ``forward(q, k,
    v)`` returns ``(result, probs)``: result ``(B, H, Tq, Dv)`` and the attention
    probabilities ``(B, H, Tq, Tk)`` after dropout.

    Args:
        dropout (float, keyword only): probability of zeroing an attention weight in
            training. Default: ``0.0``.
        causal (bool, keyword only): mask out future keys. Default: ``False``.
        device (Device | None, keyword only): the course's signature; the mask follows q's
            device. Default: the default device.
        dtype (str, keyword only): the course's signature; the mask follows q's dtype.
            Default: ``"float32"``.

    Examples:
        >>> import needle as ndl, needle.nn as nn, numpy as np
        >>> attn = nn.MultiHeadAttention(causal=True)
        >>> q = ndl.init.randn(2, 4, 5, 8)
        >>> result, probs = attn(q, q, q)
        >>> result.shape, probs.shape
        ((2, 4, 5, 8), (2, 4, 5, 5))
        >>> float(np.triu(probs.numpy(), 1).max())   # no weight on a future key
        0.0
    """

    def __init__(self, *, dropout: float = 0.0, causal: bool = False, device: Any = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.device = device
        self.dtype = dtype
        self.causal = causal
        self.dropout = Dropout(dropout)

    def create_causal_mask(self, i: int, j: int, device: Any) -> Any:
        """An additive (1, 1, i, j) mask as a backend array: 0 where query r may see key c
        (c ≤ r + j - i), the most negative float32 elsewhere (the course's helper)."""
        mask = _MASKED * np.triu(np.ones((1, 1, i, j), dtype=np.float32), j - i + 1)
        return backend_ndarray.array(mask, device=device)

    def matmul(self, a: Tensor, b_transpose: Tensor) -> Tensor:
        """a @ b_transposeᵀ over the last two axes, leading axes batched (the course's helper)."""
        return ops.matmul(a, b_transpose.transpose((b_transpose.ndim - 2, b_transpose.ndim - 1)))

    def softmax(self, logit: Tensor) -> Tensor:
        """Max-shifted softmax over the last axis."""
        return ops.softmax(logit, -1)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        who = "MultiHeadAttention"
        for name, x in (("q", q), ("k", k), ("v", v)):
            _check_shape(who, name, x, 4, "(batch, heads, length, dim)")
        if q.shape[-1] != k.shape[-1] or q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3]:
            raise NeedleError(f"{who}: q, k, v shapes do not fit: q {q.shape}, k {k.shape}, "
                              f"v {v.shape} (want q (B, H, Tq, D), k (B, H, Tk, D), "
                              f"v (B, H, Tk, Dv))")
        queries_len, dim = q.shape[2], q.shape[3]
        keys_len = k.shape[2]
        scores = self.matmul(q, k) / float(np.sqrt(dim))
        if self.causal:
            mask = Tensor(self.create_causal_mask(queries_len, keys_len, q.device),
                          device=q.device, dtype=q.dtype, requires_grad=False)
            scores = scores + mask.broadcast_to(scores.shape)
        probs = self.dropout(self.softmax(scores))
        return ops.matmul(probs, v), probs

    def extra_repr(self) -> str:
        return f"dropout={self.dropout.p}, causal={self.causal}"


class AttentionLayer(Module):
    """Multi-head attention with prenorms and projections (no biases), as in the course.

    ``X = softmax(LN_q(q) W_q · (LN_k(k) W_k)ᵀ / √D + mask) · LN_v(v) W_v``, with the H·D
    projected channels split into H heads of D for the softmax (a
    :class:`MultiHeadAttention`) and merged back after it; the result is ``X W_o``.

    Shapes: q ``(B, Tq, q_features)``; k ``(B, Tk, k_features)`` and v ``(B, Tk,
    v_features)``, both q itself when omitted (self-attention). ``forward(q, k=None,
    v=None)`` returns ``(B, Tq, out_features)``.

    Args:
        q_features (int): channels of q.
        num_head (int): heads H.
        dim_head (int): channels per head D (the inner width is H·D).
        k_features (int | None, keyword only): channels of k. Default: ``q_features``.
        v_features (int | None, keyword only): channels of v. Default: ``q_features``.
        out_features (int | None, keyword only): channels of the result. Default:
            ``q_features``.
        dropout (float, keyword only): dropout on the attention probabilities. Default:
            ``0.0``.
        causal (bool, keyword only): mask out future keys. Default: ``True``.
        device (Device | None, keyword only): where the parameters live. Default: the
            default device.
        dtype (str, keyword only): the parameters' dtype. Default: ``"float32"``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> layer = nn.AttentionLayer(16, num_head=4, dim_head=8)
        >>> layer(ndl.init.randn(2, 5, 16)).shape
        (2, 5, 16)
        >>> cross = nn.AttentionLayer(16, 4, 8, k_features=12, v_features=12, out_features=10,
        ...                           causal=False)
        >>> memory = ndl.init.randn(2, 7, 12)
        >>> cross(ndl.init.randn(2, 5, 16), memory, memory).shape
        (2, 5, 10)
    """

    def __init__(self, q_features: int, num_head: int, dim_head: int, *,
                 k_features: int | None = None, v_features: int | None = None,
                 out_features: int | None = None, dropout: float = 0.0, causal: bool = True,
                 device: Any = None, dtype: Any = "float32") -> None:
        super().__init__()
        self.device = device
        self.dtype = dtype
        k_features = q_features if k_features is None else k_features
        v_features = q_features if v_features is None else v_features
        out_features = q_features if out_features is None else out_features
        self.q_features, self.k_features = q_features, k_features
        self.v_features, self.out_features = v_features, out_features
        self.num_head = num_head
        self.dim_head = dim_head
        # Creation order is the course's: it fixes which random numbers each weight gets.
        self.prenorm_q = LayerNorm1d(q_features, device=device, dtype=dtype)
        self.prenorm_k = LayerNorm1d(k_features, device=device, dtype=dtype)
        self.prenorm_v = LayerNorm1d(v_features, device=device, dtype=dtype)
        inner = num_head * dim_head
        self.q_projection = Linear(q_features, inner, bias=False, device=device, dtype=dtype)
        self.k_projection = Linear(k_features, inner, bias=False, device=device, dtype=dtype)
        self.v_projection = Linear(v_features, inner, bias=False, device=device, dtype=dtype)
        self.attn = MultiHeadAttention(dropout=dropout, causal=causal, device=device,
                                       dtype=dtype)
        self.out_projection = Linear(inner, out_features, bias=False, device=device,
                                     dtype=dtype)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, T, H·D) -> (B, H, T, D)."""
        batch, length, _ = x.shape
        return x.reshape((batch, length, self.num_head, self.dim_head)).permute((0, 2, 1, 3))

    def forward(self, q: Tensor, k: Tensor | None = None, v: Tensor | None = None) -> Tensor:
        k = q if k is None else k
        v = q if v is None else v
        who = f"AttentionLayer({self.q_features}, {self.num_head}, {self.dim_head})"
        for name, x, features in (("q", q, self.q_features), ("k", k, self.k_features),
                                  ("v", v, self.v_features)):
            if len(x.shape) != 3 or x.shape[-1] != features:
                raise NeedleError(f"{who}: {name} must have shape (batch, length, {features}), "
                                  f"got shape {x.shape}")
        if k.shape[:2] != v.shape[:2] or q.shape[0] != k.shape[0]:
            raise NeedleError(f"{who}: batch or length of q {q.shape}, k {k.shape}, "
                              f"v {v.shape} do not match")
        batch, queries_len, _ = q.shape
        x, _ = self.attn(self._heads(self.q_projection(self.prenorm_q(q))),
                         self._heads(self.k_projection(self.prenorm_k(k))),
                         self._heads(self.v_projection(self.prenorm_v(v))))
        x = x.permute((0, 2, 1, 3)).reshape((batch, queries_len, self.num_head * self.dim_head))
        return self.out_projection(x)

    def extra_repr(self) -> str:
        return (f"{self.q_features}, num_head={self.num_head}, dim_head={self.dim_head}, "
                f"out_features={self.out_features}")


class TransformerLayer(Module):
    """One prenorm residual block, as in the course: self-attention, then a two-layer MLP.

    ``x = x + Dropout(AttentionLayer(x))``, then
    ``x = x + Dropout(Linear_2(Dropout(ReLU(Linear_1(LayerNorm(x))))))``; the attention
    brings its own prenorms (see :class:`AttentionLayer`).

    Shapes: x ``(B, T, q_features)``, output the same.

    Args:
        q_features (int): channels of x.
        num_head (int): attention heads H.
        dim_head (int): channels per head D.
        hidden_size (int): width of the MLP.
        dropout (float, keyword only): every dropout above and the attention's. Default:
            ``0.0``.
        causal (bool, keyword only): mask out future positions. Default: ``True``.
        device (Device | None, keyword only): where the parameters live. Default: the
            default device.
        dtype (str, keyword only): the parameters' dtype. Default: ``"float32"``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> block = nn.TransformerLayer(16, num_head=4, dim_head=8, hidden_size=32)
        >>> block(ndl.init.randn(2, 5, 16)).shape
        (2, 5, 16)
    """

    def __init__(self, q_features: int, num_head: int, dim_head: int, hidden_size: int, *,
                 dropout: float = 0.0, causal: bool = True, device: Any = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.device = device
        self.dtype = dtype
        self.attention = AttentionLayer(q_features, num_head, dim_head, dropout=dropout,
                                        causal=causal, device=device, dtype=dtype)
        self.attention_dropout = Dropout(dropout)
        self.mlp = Sequential(
            LayerNorm1d(q_features, device=device, dtype=dtype),
            Linear(q_features, hidden_size, device=device, dtype=dtype),
            ReLU(),
            Dropout(dropout),
            Linear(hidden_size, q_features, device=device, dtype=dtype),
            Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention_dropout(self.attention(x))
        return x + self.mlp(x)


class Transformer(Module):
    """A decoder-only Transformer: learned positions, then a stack of TransformerLayers.

    ``h_0 = x + P[0:T]`` with ``P`` a learned ``(sequence_len, embedding_size)`` positional
    embedding, ``h_l = TransformerLayer_l(h_(l-1))`` for l = 1 ... num_layers, and the
    output is ``h_num_layers``.

    Shapes: x ``(T, B, embedding_size)``, or ``(B, T, embedding_size)`` with
    ``batch_first``, with T ≤ ``sequence_len``. ``forward(x, h=None)`` returns ``(output,
    zeros_like(output))``, output in x's layout; the second mimics an RNN's state, as in
    the course, and ``h`` is ignored.

    Args:
        embedding_size (int): channels of x.
        hidden_size (int): each block's MLP width.
        num_layers (int): blocks stacked.
        num_head (int, keyword only): attention heads per block. Default: ``8``.
        dim_head (int, keyword only): channels per head. Default: ``32``.
        dropout (float, keyword only): every dropout in the blocks. Default: ``0.0``.
        causal (bool, keyword only): mask out future positions. Default: ``True``.
        device (Device | None, keyword only): where the parameters live. Default: the
            default device.
        dtype (str, keyword only): the parameters' dtype. Default: ``"float32"``.
        batch_first (bool, keyword only): x and output are batch-major. Default:
            ``False``.
        sequence_len (int, keyword only): the longest T (the positions learned).
            Default: ``2048``.

    Examples:
        >>> import needle as ndl, needle.nn as nn
        >>> model = nn.Transformer(16, hidden_size=32, num_layers=2, num_head=4, dim_head=8,
        ...                        sequence_len=10)
        >>> out, state = model(ndl.init.randn(5, 2, 16))     # (T, B, embedding_size)
        >>> out.shape, float(state.numpy().max())
        ((5, 2, 16), 0.0)
    """

    def __init__(self, embedding_size: int, hidden_size: int, num_layers: int, *,
                 num_head: int = 8, dim_head: int = 32, dropout: float = 0.0,
                 causal: bool = True, device: Any = None, dtype: Any = "float32",
                 batch_first: bool = False, sequence_len: int = 2048) -> None:
        super().__init__()
        self.device = device
        self.dtype = dtype
        self.batch_first = batch_first
        self.embedding_size = embedding_size
        self.sequence_len = sequence_len
        self.positional_embedding = Embedding(sequence_len, embedding_size, device=device,
                                              dtype=dtype)
        self.layers = Sequential(*[
            TransformerLayer(embedding_size, num_head, dim_head, hidden_size, dropout=dropout,
                             causal=causal, device=device, dtype=dtype)
            for _ in range(num_layers)])

    def forward(self, x: Tensor, h: Any = None) -> tuple[Tensor, Tensor]:
        layout = "(batch, length, {})" if self.batch_first else "(length, batch, {})"
        if len(x.shape) != 3 or x.shape[-1] != self.embedding_size:
            raise NeedleError(f"Transformer: x must have shape "
                              f"{layout.format(self.embedding_size)}, got shape {x.shape}")
        if not self.batch_first:
            x = x.transpose((0, 1))
        batch, length, channels = x.shape
        if length > self.sequence_len:
            raise NeedleError(f"Transformer: a sequence of length {length} is longer than "
                              f"sequence_len={self.sequence_len} (the positions it learned)")
        positions = self.positional_embedding(np.arange(length))
        x = x + positions.reshape((1, length, channels)).broadcast_to(x.shape)
        x = self.layers(x)
        if not self.batch_first:
            x = x.transpose((0, 1))
        return x, init.zeros_like(x)

    def extra_repr(self) -> str:
        return f"{self.embedding_size}, batch_first={self.batch_first}"
