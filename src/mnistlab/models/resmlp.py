"""Residual MLP: the same depth as a plain MLP, but each block adds to an identity path."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnistlab.errors import ConfigError
from mnistlab.models.common import (
    Classifier,
    check_dropout,
    check_shape,
    flat_features,
    init_weights,
    make_activation,
)


class ResidualBlock(nn.Module):
    """``x + Linear(Dropout(act(Linear(norm(x)))))`` (pre-norm); ``skip=False`` drops the ``x +``."""

    def __init__(
        self, width: int, activation: str, dropout: float, batch_norm: bool, skip: bool
    ) -> None:
        super().__init__()
        self.skip = skip
        self.branch = nn.Sequential(
            nn.BatchNorm1d(width) if batch_norm else nn.Identity(),
            nn.Linear(width, width),
            make_activation(activation),
            nn.Dropout(dropout) if dropout else nn.Identity(),
            nn.Linear(width, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return x + out if self.skip else out


class ResMLP(Classifier):
    """Input projection, ``num_blocks`` residual blocks of two linear layers each, head.

    With ``skip=false`` it is a plain MLP of identical size and depth: the control
    arm of the skip-connection study.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        width: int = 256,
        num_blocks: int = 3,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = True,
        skip: bool = True,
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes, self.input_shape = check_shape(num_classes, input_shape)
        if width < 1 or num_blocks < 0:
            raise ConfigError(
                f"model.width={width} must be >= 1 and model.num_blocks={num_blocks} >= 0"
            )
        dropout = check_dropout(dropout)
        self.stem = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_features(self.input_shape), width),
            make_activation(activation),
        )
        self.blocks = nn.Sequential(
            *[
                ResidualBlock(width, activation, dropout, batch_norm, skip)
                for _ in range(num_blocks)
            ]
        )
        self.post = nn.Sequential(
            nn.BatchNorm1d(width) if batch_norm else nn.Identity(), make_activation(activation)
        )
        self.head = nn.Linear(width, self.num_classes)
        init_weights(self, init, activation, init_std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.blocks(self.stem(x)))
