"""LeNet-5 (LeCun et al. 1998), sized from the input shape."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnistlab.models.common import (
    Classifier,
    check_dropout,
    check_shape,
    init_weights,
    make_activation,
    make_pool,
)


class LeNet5(Classifier):
    """conv 6@5x5 (padded) - pool - conv 16@5x5 - pool - fc 120 - fc 84 - head.

    The 1998 original used tanh and average pooling (``activation=tanh pooling=avg``);
    ReLU and max pooling train faster and are the default.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        activation: str = "relu",
        pooling: str = "max",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes, self.input_shape = check_shape(num_classes, input_shape)
        dropout = check_dropout(dropout)
        channels = self.input_shape[0]

        def conv(cin: int, cout: int, padding: int) -> list[nn.Module]:
            layers: list[nn.Module] = [
                nn.Conv2d(cin, cout, 5, padding=padding, bias=not batch_norm)
            ]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            return [*layers, make_activation(activation), make_pool(pooling)]

        self.conv = nn.Sequential(*conv(channels, 6, 2), *conv(6, 16, 0))
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, *self.input_shape)).numel()
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 120),
            make_activation(activation),
            nn.Linear(120, 84),
            make_activation(activation),
            nn.Dropout(dropout) if dropout else nn.Identity(),
        )
        self.head = nn.Linear(84, self.num_classes)
        init_weights(self, init, activation, init_std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))
