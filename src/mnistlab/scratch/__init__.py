"""From scratch: a network whose backpropagation and optimizers are written by hand.

* :mod:`mnistlab.scratch.network`: the MLP (``model=scratch_mlp``), forward and backward pass;
* :mod:`mnistlab.scratch.optimizers`: SGD, momentum, Nesterov, RMSProp, Adagrad, Adam(W), Nadam;
* :mod:`mnistlab.scratch.lab`: how the lab trains them (optimizer mapping, refusals);
* ``python -m mnistlab.gradcheck``: checks both against autograd and ``torch.optim``.
"""

from mnistlab.scratch.network import ACTIVATION_FUNCTIONS, INITS, ScratchMLP
from mnistlab.scratch.optimizers import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    HandOptimizer,
    NAdam,
    RMSprop,
)

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "INITS",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "HandOptimizer",
    "NAdam",
    "RMSprop",
    "ScratchMLP",
]
