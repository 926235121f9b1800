"""A configurable VGG-style conv stack: the workhorse convnet of the lab."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnistlab.errors import ConfigError
from mnistlab.models.common import (
    Classifier,
    check_dropout,
    check_shape,
    init_weights,
    make_activation,
    make_pool,
)


class CNN(Classifier):
    """Stages of ``convs_per_stage`` convolutions (``kernel_size``, same padding) then a 2x2 pool.

    ``channels`` lists one width per stage. ``global_pool`` averages the last
    feature map instead of flattening it; ``fc_sizes`` are hidden dense layers
    before the head; ``dropout`` applies before each dense layer and the head.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        convs_per_stage: int = 1,
        kernel_size: int = 3,
        activation: str = "relu",
        pooling: str = "max",
        batch_norm: bool = True,
        dropout: float = 0.25,
        fc_sizes: Sequence[int] = (128,),
        global_pool: bool = False,
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes, self.input_shape = check_shape(num_classes, input_shape)
        if (
            not channels
            or any(c < 1 for c in channels)
            or convs_per_stage < 1
            or kernel_size % 2 == 0
        ):
            raise ConfigError(
                f"model.channels={list(channels)} (non-empty, >= 1), convs_per_stage={convs_per_stage} (>= 1) "
                f"and kernel_size={kernel_size} (odd) are not a valid conv stack"
            )
        dropout = check_dropout(dropout)
        layers: list[nn.Module] = []
        cin, size = self.input_shape[0], min(self.input_shape[1:])
        for cout in channels:
            for _ in range(convs_per_stage):
                layers.append(
                    nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
                )
                if batch_norm:
                    layers.append(nn.BatchNorm2d(cout))
                layers.append(make_activation(activation))
                cin = cout
            if size >= 2:  # stop pooling once the map is 1x1
                layers.append(make_pool(pooling))
                size //= 2
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            out = self.conv(torch.zeros(1, *self.input_shape))
        dense: list[nn.Module] = [
            nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity(),
            nn.Flatten(),
        ]
        width = out.shape[1] if global_pool else out.numel()
        for h in fc_sizes:
            dense += [
                nn.Dropout(dropout) if dropout else nn.Identity(),
                nn.Linear(width, int(h)),
                make_activation(activation),
            ]
            width = int(h)
        if dropout:
            dense.append(nn.Dropout(dropout))
        self.fc = nn.Sequential(*dense)
        self.head = nn.Linear(width, self.num_classes)
        init_weights(self, init, activation, init_std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))
