"""The course's language model: Embedding → RNN/LSTM/Transformer → Linear over the vocabulary."""

from __future__ import annotations

from typing import Any

from needle import NeedleError, Tensor

from .. import nn


class LanguageModel(nn.Module):
    """Maps token ids (seq_len, batch) to logits (seq_len·batch, output_size) and the state.

    With ``seq_model="transformer"`` the sequence model is a causal ``nn.Transformer``
    (hidden_size is its MLP width, seq_len the longest sequence it learns positions for)
    and the head reads embedding_size features, as in the course's hw4_extra.
    """

    def __init__(self, embedding_size: int, output_size: int, hidden_size: int,
                 num_layers: int = 1, seq_model: str = "rnn", seq_len: int = 40,
                 device: Any = None, dtype: Any = "float32") -> None:
        super().__init__()
        if seq_model not in ("rnn", "lstm", "transformer"):
            raise NeedleError(f"LanguageModel: seq_model must be 'rnn', 'lstm' or "
                              f"'transformer', got {seq_model!r}")
        self.embedding = nn.Embedding(output_size, embedding_size, device=device, dtype=dtype)
        if seq_model == "transformer":
            self.hidden_size = embedding_size  # what the head reads
            self.seq_model = nn.Transformer(embedding_size, hidden_size, num_layers,
                                            device=device, dtype=dtype, sequence_len=seq_len)
        else:
            self.hidden_size = hidden_size
            seq_cls = nn.RNN if seq_model == "rnn" else nn.LSTM
            self.seq_model = seq_cls(embedding_size, hidden_size, num_layers, device=device,
                                     dtype=dtype)
        self.linear = nn.Linear(self.hidden_size, output_size, device=device, dtype=dtype)

    def forward(self, x: Tensor, h: Any = None) -> tuple[Tensor, Any]:
        seq_len, batch = x.shape
        out, h = self.seq_model(self.embedding(x), h)
        return self.linear(out.reshape((seq_len * batch, self.hidden_size))), h
