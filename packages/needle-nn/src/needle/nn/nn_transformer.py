"""Course module name (hw4_extra ``needle.nn.nn_transformer``)."""

from .transformer import AttentionLayer, MultiHeadAttention, Transformer, TransformerLayer  # noqa: F401
