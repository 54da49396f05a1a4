"""The course's language model: Embedding → RNN/LSTM → Linear over the vocabulary."""

from __future__ import annotations

from typing import Any

from needle import NeedleError, Tensor

from .. import nn


class LanguageModel(nn.Module):
    """Maps token ids (seq_len, batch) to logits (seq_len·batch, output_size) and the state."""

    def __init__(self, embedding_size: int, output_size: int, hidden_size: int,
                 num_layers: int = 1, seq_model: str = "rnn", device: Any = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        if seq_model not in ("rnn", "lstm"):
            raise NeedleError(f"LanguageModel: seq_model must be 'rnn' or 'lstm', got {seq_model!r}")
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(output_size, embedding_size, device=device, dtype=dtype)
        seq_cls = nn.RNN if seq_model == "rnn" else nn.LSTM
        self.seq_model = seq_cls(embedding_size, hidden_size, num_layers, device=device,
                                 dtype=dtype)
        self.linear = nn.Linear(hidden_size, output_size, device=device, dtype=dtype)

    def forward(self, x: Tensor, h: Any = None) -> tuple[Tensor, Any]:
        seq_len, batch = x.shape
        out, h = self.seq_model(self.embedding(x), h)
        return self.linear(out.reshape((seq_len * batch, self.hidden_size))), h
