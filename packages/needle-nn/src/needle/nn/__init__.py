"""Neural-network layers: ``Module``, ``Parameter`` and the course's layers.

Course code (``import needle.nn as nn``) runs unchanged; modules also follow
PyTorch's conventions (named_parameters, state_dict, load_state_dict, to, repr).
"""

from .activation import ReLU, Sigmoid, Tanh
from .container import ModuleDict, ModuleList, Residual, Sequential
from .conv import Conv
from .dropout import Dropout
from .embedding import Embedding
from .linear import Flatten, Identity, Linear
from .loss import SoftmaxLoss
from .module import IncompatibleKeys, Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm1d
from .pooling import AvgPool2d, MaxPool2d
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .torch_weights import convert_torch_state_dict, load_torch_state_dict
from .transformer import AttentionLayer, MultiHeadAttention, Transformer, TransformerLayer

__all__ = [
    "GRU", "LSTM", "RNN", "AttentionLayer", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv",
    "Dropout", "Embedding", "Flatten", "GRUCell", "Identity", "IncompatibleKeys", "LSTMCell",
    "LayerNorm1d", "Linear", "MaxPool2d", "Module", "ModuleDict", "ModuleList",
    "MultiHeadAttention", "Parameter", "RNNCell", "ReLU", "Residual", "Sequential", "Sigmoid",
    "SoftmaxLoss", "Tanh", "Transformer", "TransformerLayer",
    "convert_torch_state_dict", "load_torch_state_dict",
]
