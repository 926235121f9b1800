"""A multilayer perceptron whose forward and backward passes are written out by hand.

Read it top to bottom like NumPy code: activations and their derivatives, weight
initializations, softmax with its two losses, then the network (forward pass, backward
pass). Every gradient is computed here with plain tensor operations (matrix products,
sums, element-wise functions); autograd records nothing while it trains. Tensors play the
role of NumPy arrays only so that the same code runs on a GPU.

Shapes: a batch of ``N`` images is flattened to ``x`` of shape ``(N, D)``. A layer with
``m`` inputs and ``n`` outputs holds ``W`` of shape ``(n, m)`` and ``b`` of shape ``(n,)``
(torch's ``nn.Linear`` layout) and computes ``z = a @ W.T + b``.

Check any change to this file with ``python -m mnistlab.gradcheck``: it compares every
gradient below with autograd's and with finite differences.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mnistlab.errors import ConfigError
from mnistlab.models.common import Classifier, check_shape

# --- 1. activations: a = f(z), and f'(z) written with z and a = f(z) ------------------------
# The derivative may use the output a: sigmoid' = a (1 - a) costs one multiply.

SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772
LEAKY_SLOPE = 0.01


def _sigmoid(z: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-z))


def _gelu(z: Tensor) -> Tensor:
    return z * 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))  # z * Phi(z), Phi: normal CDF


def _gelu_grad(z: Tensor, a: Tensor) -> Tensor:
    phi = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)  # normal density
    return 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0))) + z * phi


def _silu_grad(z: Tensor, a: Tensor) -> Tensor:
    s = _sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


@dataclass(frozen=True)
class ActivationFunction:
    """``f(z)``, ``f'(z)`` (given ``z`` and ``a = f(z)``) and the init gain of an activation."""

    f: Callable[[Tensor], Tensor]
    df: Callable[[Tensor, Tensor], Tensor]
    gain: float  # Glorot / He scale factor that keeps the signal's variance through f


ACTIVATION_FUNCTIONS: dict[str, ActivationFunction] = {
    "identity": ActivationFunction(lambda z: z, lambda z, a: torch.ones_like(z), 1.0),
    "sigmoid": ActivationFunction(_sigmoid, lambda z, a: a * (1.0 - a), 1.0),
    "tanh": ActivationFunction(torch.tanh, lambda z, a: 1.0 - a * a, 5.0 / 3.0),
    "relu": ActivationFunction(
        lambda z: torch.where(z > 0, z, 0.0), lambda z, a: (z > 0).to(z.dtype), math.sqrt(2.0)
    ),
    "leaky_relu": ActivationFunction(
        lambda z: torch.where(z > 0, z, LEAKY_SLOPE * z),
        lambda z, a: torch.where(z > 0, 1.0, torch.full_like(z, LEAKY_SLOPE)),
        math.sqrt(2.0 / (1.0 + LEAKY_SLOPE**2)),
    ),
    "elu": ActivationFunction(
        lambda z: torch.where(z > 0, z, torch.exp(z) - 1.0),
        lambda z, a: torch.where(z > 0, 1.0, a + 1.0),  # e^z = a + 1 where z <= 0
        math.sqrt(2.0),
    ),
    "selu": ActivationFunction(
        lambda z: SELU_SCALE * torch.where(z > 0, z, SELU_ALPHA * (torch.exp(z) - 1.0)),
        lambda z, a: torch.where(z > 0, SELU_SCALE, a + SELU_SCALE * SELU_ALPHA),
        1.0,
    ),
    "gelu": ActivationFunction(_gelu, _gelu_grad, math.sqrt(2.0)),
    "silu": ActivationFunction(lambda z: z * _sigmoid(z), _silu_grad, math.sqrt(2.0)),
    # LeCun's 1.7159 tanh(2z/3); derivative 1.7159 (2/3) (1 - tanh^2) = (2/3) (1.7159 - a^2 / 1.7159)
    "scaled_tanh": ActivationFunction(
        lambda z: 1.7159 * torch.tanh(z * (2.0 / 3.0)),
        lambda z, a: (2.0 / 3.0) * (1.7159 - a * a / 1.7159),
        5.0 / 3.0,
    ),
}


# --- 2. initialization of W (n_out x n_in) and b ------------------------------------------
# default: PyTorch's nn.Linear rule, U(-1/sqrt(n_in), 1/sqrt(n_in)) for W and b; drawn in the
#          same order as the autograd MLP, so the same seed gives both nets the same weights.
# zeros:   W = 0: every unit of a layer computes the same thing forever (the symmetry problem).
# normal:  W ~ N(0, init_std^2).
# glorot:  W ~ U(-r, r), r = sqrt(6 / (n_in + n_out))          (alias: xavier; Glorot & Bengio).
# glorot_gain: the same r times the activation's gain          (alias: xavier_gain).
# he:      W ~ N(0, (gain / sqrt(n_in))^2)                     (alias: kaiming).
# Every init but ``default`` sets b = 0.

INIT_ALIASES = {"xavier": "glorot", "xavier_gain": "glorot_gain", "kaiming": "he"}
INITS = ("default", "zeros", "normal", "glorot", "glorot_gain", "he", *INIT_ALIASES)


def init_parameters(W: Tensor, b: Tensor, init: str, gain: float, std: float) -> None:
    """Fill ``W`` and ``b`` in place by the rule ``init`` (see the table above)."""
    n_out, n_in = W.shape
    init = INIT_ALIASES.get(init, init)
    if init == "default":
        bound = 1.0 / math.sqrt(n_in)
        W.uniform_(-bound, bound)
        b.uniform_(-bound, bound)
        return
    if init == "zeros":
        W.zero_()
    elif init == "normal":
        W.normal_(0.0, std)
    elif init in ("glorot", "glorot_gain"):
        r = (gain if init == "glorot_gain" else 1.0) * math.sqrt(6.0 / (n_in + n_out))
        W.uniform_(-r, r)
    elif init == "he":
        W.normal_(0.0, gain / math.sqrt(n_in))
    b.zero_()


# --- 3. output layer: softmax, and the two losses with their gradient w.r.t. the logits -----


def softmax(z: Tensor) -> Tensor:
    """Row-wise softmax; subtracting the row maximum keeps exp() from overflowing."""
    e = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def log_softmax(z: Tensor) -> Tensor:
    shifted = z - z.max(dim=1, keepdim=True).values
    return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))


def target_distribution(
    labels: Tensor, num_classes: int, label_smoothing: float, dtype: torch.dtype
) -> Tensor:
    """One-hot rows ``T`` (N x K); label smoothing moves mass ``s`` evenly to all K classes."""
    T = torch.zeros(len(labels), num_classes, dtype=dtype, device=labels.device)
    T[torch.arange(len(labels), device=labels.device), labels] = 1.0
    if label_smoothing:
        T = T * (1.0 - label_smoothing) + label_smoothing / num_classes
    return T


def cross_entropy(logits: Tensor, T: Tensor) -> tuple[Tensor, Tensor]:
    """``L = -1/N sum_n sum_k T_nk log p_nk`` with ``p = softmax(logits)``; ``dL/dlogits = (p - T) / N``."""
    N = len(T)
    loss = -(T * log_softmax(logits)).sum() / N
    return loss, (softmax(logits) - T) / N


def softmax_mse(logits: Tensor, T: Tensor) -> tuple[Tensor, Tensor]:
    """``L = 1/N sum_n sum_k (p_nk - T_nk)^2`` with ``p = softmax(logits)``.

    Chain rule through the softmax, whose Jacobian is ``dp_k/dz_j = p_k (delta_kj - p_j)``:
    with ``g = dL/dp = 2 (p - T) / N``, ``dL/dz_j = p_j (g_j - sum_k g_k p_k)``.
    """
    N = len(T)
    p = softmax(logits)
    loss = ((p - T) ** 2).sum() / N
    g = 2.0 * (p - T) / N
    return loss, p * (g - (g * p).sum(dim=1, keepdim=True))


#: ``module.loss`` name -> function returning (loss, dL/dlogits)
LOSS_FUNCTIONS: dict[str, Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]] = {
    "ce": cross_entropy,
    "mse": softmax_mse,
}


# --- 4. the network -------------------------------------------------------------------------


class Dense(nn.Module):
    """The parameters of one fully connected layer, ``W`` (out x in) and ``b``; it computes nothing.

    ``nn.Module`` and ``nn.Parameter`` only give the lab what it needs around the math:
    ``.to(device)``, checkpoints, and a ``.grad`` slot where the backward pass stores its result.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))


class Activation(nn.Module):
    """``a = f(z)`` for one hidden layer. Called as a module so that the lab's diagnostics
    (dead units, saturation) can watch its input ``z`` and output ``a``."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.fn = ACTIVATION_FUNCTIONS[kind]

    def forward(self, z: Tensor) -> Tensor:
        return self.fn.f(z)

    def derivative(self, z: Tensor, a: Tensor) -> Tensor:
        return self.fn.df(z, a)

    def extra_repr(self) -> str:
        return self.kind


@dataclass
class Cache:
    """What the forward pass keeps for the backward pass."""

    inputs: list[Tensor] = field(default_factory=list)  # a entering each layer: x, a_1, ..., a_L
    pre_activations: list[Tensor] = field(default_factory=list)  # z_1 ... z_L of hidden layers


class ScratchMLP(Classifier):
    """An MLP trained with hand-written backpropagation (and the hand-written optimizers).

    Args:
        num_classes, input_shape: from the data module.
        hidden_sizes: one hidden layer per entry.
        activation: one of :data:`ACTIVATION_FUNCTIONS`.
        init: one of :data:`INITS`; ``init_std`` is the std of ``normal``.
        dropout, batch_norm: not written by hand; accepted so that the lab's presets
            (``regularization=dropout``) give a clear refusal instead of a TypeError.
    """

    #: ClassifierModule trains a net with this flag by calling :meth:`loss_and_gradients`
    #: (and the optimizers of :mod:`mnistlab.scratch.optimizers`) instead of autograd.
    computes_own_gradients = True

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        hidden_sizes: Sequence[int] = (256, 128),
        activation: str = "relu",
        init: str = "default",
        init_std: float = 0.01,
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes, self.input_shape = check_shape(num_classes, input_shape)
        sizes = [int(h) for h in hidden_sizes]
        if any(h < 1 for h in sizes):
            raise ConfigError(f"model.hidden_sizes={list(hidden_sizes)} must all be >= 1")
        if activation not in ACTIVATION_FUNCTIONS:
            raise ConfigError(
                f"model.activation={activation!r} is not written by hand in mnistlab.scratch; "
                f"choose one of: {', '.join(ACTIVATION_FUNCTIONS)}"
            )
        if init not in INITS:
            raise ConfigError(f"model.init={init!r} is unknown; choose one of: {', '.join(INITS)}")
        if dropout or batch_norm:
            raise ConfigError(
                f"model.dropout={dropout} / model.batch_norm={batch_norm}: dropout and batch norm "
                "are not written by hand for model=scratch_mlp; set them to 0 / false or use model=mlp"
            )
        widths = [math.prod(self.input_shape), *sizes]
        self.layers = nn.ModuleList(Dense(m, n) for m, n in zip(widths, widths[1:], strict=False))
        self.activations = nn.ModuleList(Activation(activation) for _ in sizes)
        self.head = Dense(widths[-1], self.num_classes)
        gain = ACTIVATION_FUNCTIONS[activation].gain
        with torch.no_grad():
            for layer in self.dense_layers():
                init_parameters(layer.weight, layer.bias, init, gain, init_std)

    def dense_layers(self) -> list[Dense]:
        """Hidden layers then the head: the order of the forward pass."""
        return [*self.layers, self.head]

    # --- forward pass: z = a W^T + b, a = f(z), layer after layer ---------------------------
    def forward_pass(self, x: Tensor) -> tuple[Tensor, Cache]:
        """Logits (N x K) and the cache the backward pass needs."""
        cache = Cache()
        a = x.flatten(1)  # (N, D)
        for layer, f in zip(self.layers, self.activations, strict=True):
            cache.inputs.append(a)
            z = a @ layer.weight.T + layer.bias  # (N, n_out)
            a = f(z)
            cache.pre_activations.append(z)
        cache.inputs.append(a)
        logits = a @ self.head.weight.T + self.head.bias  # the head has no activation
        return logits, cache

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_pass(x)[0]

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's output (what the head sees; used by t-SNE)."""
        return self.forward_pass(x)[1].inputs[-1]

    # --- backward pass: the chain rule, from the logits back to the first layer --------------
    def backward_pass(self, cache: Cache, dlogits: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``(dL/dW, dL/db)`` of every layer (hidden layers then head), given ``dL/dlogits``.

        For a layer ``z = a W^T + b`` and ``delta = dL/dz`` (N x n_out):
        ``dL/dW = delta^T a``, ``dL/db = sum over the batch of delta``, and the layer below
        gets ``dL/da = delta W``, then ``delta_below = dL/da * f'(z_below)``.
        """
        layers = self.dense_layers()
        grads: list[tuple[Tensor, Tensor]] = []
        delta = dlogits
        for i in reversed(range(len(layers))):
            a_in = cache.inputs[i]
            grads.append((delta.T @ a_in, delta.sum(dim=0)))
            if i > 0:  # pass the error down through W and the activation of the layer below
                z, a = cache.pre_activations[i - 1], cache.inputs[i]
                delta = (delta @ layers[i].weight) * self.activations[i - 1].derivative(z, a)
        return grads[::-1]

    # --- one training step's worth of math ----------------------------------------------------
    @torch.no_grad()
    def loss_and_gradients(
        self, x: Tensor, labels: Tensor, loss: str = "ce", label_smoothing: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        """Forward pass, loss, backward pass; each gradient is stored in its parameter's ``.grad``.

        ``.grad`` is where the optimizers and the lab's diagnostics (gradient norms,
        per-neuron traces) read it, as they would after ``loss.backward()``.
        Returns ``(loss, logits)``.
        """
        logits, cache = self.forward_pass(x)
        T = target_distribution(labels, self.num_classes, label_smoothing, logits.dtype)
        loss_value, dlogits = LOSS_FUNCTIONS[loss](logits, T)
        for layer, (dW, db) in zip(
            self.dense_layers(), self.backward_pass(cache, dlogits), strict=True
        ):
            layer.weight.grad = dW.to(layer.weight.dtype)  # bf16 autocast computes in bf16
            layer.bias.grad = db.to(layer.bias.dtype)
        return loss_value, logits
