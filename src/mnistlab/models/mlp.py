"""Fully connected networks: the family most design-choice studies vary."""

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


def dense_block(
    in_features: int, out_features: int, activation: str, dropout: float, batch_norm: bool
) -> nn.Sequential:
    """Linear -> [BatchNorm] -> activation -> [Dropout]."""
    layers: list[nn.Module] = [nn.Linear(in_features, out_features, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features))
    layers.append(make_activation(activation))
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLP(Classifier):
    """A multilayer perceptron with one hidden layer per entry of ``hidden_sizes``.

    ``init`` is one of default, zeros, normal (N(0, init_std^2)), xavier (Glorot, gain 1), xavier_gain (Glorot x the activation's gain), kaiming.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        hidden_sizes: Sequence[int] = (256, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes, self.input_shape = check_shape(num_classes, input_shape)
        sizes = [int(h) for h in hidden_sizes]
        if not sizes:
            raise ConfigError(
                "model.hidden_sizes=[] leaves no hidden layer; use model=softmax for a network "
                "without one, or give at least one size, e.g. model.hidden_sizes=[256]"
            )
        if any(h < 1 for h in sizes):
            raise ConfigError(f"model.hidden_sizes={list(hidden_sizes)} must all be >= 1")
        dropout = check_dropout(dropout)
        layers: list[nn.Module] = [nn.Flatten()]
        width = flat_features(self.input_shape)
        for h in sizes:
            layers.append(dense_block(width, h, activation, dropout, batch_norm))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, self.num_classes)
        init_weights(self, init, activation, init_std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def hidden_layers(self) -> list[nn.Module]:
        """The hidden blocks, in order (diagnostics hook into them)."""
        return list(self.body)[1:]
