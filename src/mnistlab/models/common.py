"""Building blocks shared by the model families: activations, normalization, initialization."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from mnistlab.errors import ConfigError, in_range, one_of


class ScaledTanh(nn.Module):
    """LeCun's 1.7159 * tanh(2x/3), used by Ciresan et al. (2010)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


@dataclass(frozen=True)
class Activation:
    """One row of the activation table.

    ``module`` builds the layer; ``gain`` names the nonlinearity whose
    :func:`torch.nn.init.calculate_gain` scales ``xavier`` / ``kaiming`` init.
    """

    module: Callable[[], nn.Module]
    gain: str


#: the one activation table: models build from it, init reads its gains, diagnostics its types
ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(nn.ReLU, "relu"),
    "tanh": Activation(nn.Tanh, "tanh"),
    "sigmoid": Activation(nn.Sigmoid, "sigmoid"),
    "gelu": Activation(nn.GELU, "relu"),
    "leaky_relu": Activation(partial(nn.LeakyReLU, 0.01), "leaky_relu"),
    "selu": Activation(nn.SELU, "selu"),
    "elu": Activation(nn.ELU, "relu"),
    "silu": Activation(nn.SiLU, "relu"),
    "scaled_tanh": Activation(ScaledTanh, "tanh"),
    "identity": Activation(nn.Identity, "relu"),
}

POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}

INITS = ("default", "zeros", "normal", "xavier", "xavier_gain", "kaiming")


def make_activation(name: str) -> nn.Module:
    one_of(name, "model.activation", ACTIVATIONS)
    return ACTIVATIONS[name].module()


_NAME_OF_TYPE = {type(a.module()): n for n, a in ACTIVATIONS.items() if n != "identity"}


def activation_name(module: nn.Module) -> str | None:
    """The table's name of an activation layer (None for other layers and ``identity``)."""
    return _NAME_OF_TYPE.get(type(module))


def make_pool(name: str) -> nn.Module:
    """A 2x2 pooling layer: ``max`` or ``avg``."""
    one_of(name, "model.pooling", POOLS)
    return POOLS[name](2)


def check_init(init: str) -> str:
    return one_of(init, "model.init", INITS)


def check_dropout(p: float, field: str = "model.dropout") -> float:
    return float(in_range(p, field, 0.0, 1.0))


def init_weights(model: nn.Module, init: str, activation: str = "relu", std: float = 0.01) -> None:
    """Initialize every Linear/Conv weight by ``init``; biases to zero (except ``default``).

    ``default`` keeps PyTorch's own initialization; ``zeros`` makes all units of a
    layer identical (the symmetry problem); ``normal`` draws N(0, std^2);
    ``xavier`` is standard Glorot uniform (gain 1, as in Glorot & Bengio 2010);
    ``xavier_gain`` multiplies it by the gain of ``activation`` (sqrt 2 for ReLU, which
    makes it nearly Kaiming); ``kaiming`` uses the gain of ``activation``.
    """
    check_init(init)
    if init == "default":
        return
    nonlinearity = ACTIVATIONS[activation].gain if activation in ACTIVATIONS else "relu"
    gain = nn.init.calculate_gain(nonlinearity, 0.01) if nonlinearity != "selu" else 1.0
    for module in model.modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            continue
        weight = module.weight
        if init == "zeros":
            nn.init.zeros_(weight)
        elif init == "normal":
            nn.init.normal_(weight, 0.0, std)
        elif init == "xavier":
            nn.init.xavier_uniform_(weight, gain=1.0)
        elif init == "xavier_gain":
            nn.init.xavier_uniform_(weight, gain=gain)
        elif init == "kaiming":
            if nonlinearity in ("relu", "leaky_relu"):
                nn.init.kaiming_normal_(
                    weight,
                    a=0.01 if nonlinearity == "leaky_relu" else 0.0,
                    nonlinearity=nonlinearity,
                )
            else:  # kaiming's fan-in scaling with this activation's gain
                fan_in = nn.init._calculate_correct_fan(weight, "fan_in")
                nn.init.normal_(weight, 0.0, gain / math.sqrt(fan_in))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def flat_features(input_shape: tuple[int, ...]) -> int:
    return int(math.prod(input_shape))


def check_shape(num_classes: int, input_shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    if num_classes < 2:
        raise ConfigError(f"num_classes={num_classes} must be at least 2")
    if len(input_shape) != 3:
        raise ConfigError(f"input_shape={tuple(input_shape)} must be (channels, height, width)")
    return int(num_classes), tuple(int(d) for d in input_shape)


class Classifier(nn.Module):
    """Base of every model family: knows its input shape and class count.

    ``penultimate`` exposes the features before the last linear layer (used by
    t-SNE and other diagnostics); ``conv_layers`` lists layers Grad-CAM can use.
    """

    input_shape: tuple[int, int, int]
    num_classes: int
    head: nn.Linear

    def conv_layers(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, nn.Conv2d)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
