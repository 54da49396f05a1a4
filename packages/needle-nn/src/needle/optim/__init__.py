"""Optimizers, gradient clipping and learning-rate schedules (``ndl.optim``).

Course-compatible: ``SGD(params, lr, momentum, weight_decay)`` and
``Adam(params, lr, beta1, beta2, eps, weight_decay)`` with ``step()`` and
``reset_grad()``; also ``AdamW``, ``betas=(b1, b2)`` and PyTorch's parameter
groups. Updates use the backend's fused in-place kernels.
"""

from .adam import Adam, AdamW
from .clip import clip_grad_norm
from .lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "Optimizer", "StepLR",
           "clip_grad_norm"]
