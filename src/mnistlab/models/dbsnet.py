"""The "deep, big, simple" MLP of Ciresan et al. (2010), 0.35% MNIST error with deformations."""

from __future__ import annotations

from collections.abc import Sequence

from mnistlab.models.mlp import MLP


class DBSNet(MLP):
    """Plain wide-and-deep MLP; the paper's best net is 2500-2000-1500-1000-500 with scaled tanh.

    The point of the paper: no convolutions, just size, on-line training and heavy
    elastic/affine augmentation (``augmentation=elastic_affine``).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        hidden_sizes: Sequence[int] = (2500, 2000, 1500, 1000, 500),
        activation: str = "scaled_tanh",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "default",
        init_std: float = 0.05,
    ) -> None:
        super().__init__(
            num_classes, input_shape, hidden_sizes, activation, dropout, batch_norm, init, init_std
        )
