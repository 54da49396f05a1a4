"""Neural-network layers: ``Module``, ``Parameter`` and the course's layers.

Course code (``import needle.nn as nn``) runs unchanged; modules also follow
PyTorch's conventions (named_parameters, state_dict, load_state_dict, to, repr).
"""

from .activation import ReLU, Sigmoid, Tanh
from .container import Residual, Sequential
from .conv import Conv
from .dropout import Dropout
from .embedding import Embedding
from .linear import Flatten, Identity, Linear
from .loss import SoftmaxLoss
from .module import IncompatibleKeys, Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm1d
from .rnn import LSTM, RNN, LSTMCell, RNNCell
from .transformer import AttentionLayer, MultiHeadAttention, Transformer, TransformerLayer

__all__ = [
    "LSTM", "RNN", "AttentionLayer", "BatchNorm1d", "BatchNorm2d", "Conv", "Dropout",
    "Embedding", "Flatten", "Identity", "IncompatibleKeys", "LSTMCell", "LayerNorm1d", "Linear",
    "Module", "MultiHeadAttention", "Parameter", "RNNCell", "ReLU", "Residual", "Sequential",
    "Sigmoid", "SoftmaxLoss", "Tanh", "Transformer", "TransformerLayer",
]
