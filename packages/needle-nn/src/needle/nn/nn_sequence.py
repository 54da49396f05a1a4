"""Course module name (hw4 ``needle.nn.nn_sequence``)."""

from .activation import Sigmoid  # noqa: F401
from .embedding import Embedding  # noqa: F401
from .rnn import LSTM, RNN, LSTMCell, RNNCell  # noqa: F401
