"""Multinomial logistic regression: the linear baseline every study starts from."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnistlab.models.common import (
    Classifier,
    check_dropout,
    check_shape,
    flat_features,
    init_weights,
)


class SoftmaxRegression(Classifier):
    """``softmax(W x + b)`` on the flattened image; ``dropout`` is input (pixel) dropout.

    ``batch_norm`` standardizes each input pixel with batch statistics first.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes, self.input_shape = check_shape(num_classes, input_shape)
        in_features = flat_features(self.input_shape)
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.BatchNorm1d(in_features) if batch_norm else nn.Identity(),
            nn.Dropout(check_dropout(dropout)) if dropout else nn.Identity(),
        )
        self.head = nn.Linear(in_features, self.num_classes)
        init_weights(self, init, "identity", init_std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
