"""A small model zoo with the course's definitions, and the training loops that go with them.

``MLPResNet`` (MNIST-style vectors), ``ResNet9`` (3×32×32 images), ``LanguageModel``
(RNN/LSTM over token ids), plus ``epoch`` / ``train_*`` / ``evaluate_*`` helpers
with the course's semantics.
"""

from .language import LanguageModel
from .mlp_resnet import MLPResNet, ResidualBlock
from .resnet9 import ConvBN, ResNet9
from .training import (
    epoch,
    epoch_general_cifar10,
    epoch_general_ptb,
    evaluate_cifar10,
    evaluate_mnist,
    evaluate_ptb,
    train_cifar10,
    train_mnist,
    train_ptb,
)

__all__ = [
    "ConvBN", "LanguageModel", "MLPResNet", "ResNet9", "ResidualBlock", "epoch",
    "epoch_general_cifar10", "epoch_general_ptb", "evaluate_cifar10", "evaluate_mnist",
    "evaluate_ptb", "train_cifar10", "train_mnist", "train_ptb",
]
