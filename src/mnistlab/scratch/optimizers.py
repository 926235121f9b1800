"""Gradient-descent update rules written by hand: SGD, momentum, Nesterov, RMSProp, Adam(W), Nadam, Adagrad.

Each optimizer is a subclass of ``torch.optim.Optimizer`` only for the bookkeeping the lab
needs around it (parameter groups, per-parameter state, ``state_dict`` for checkpoints,
learning-rate schedulers that change ``group["lr"]``). The update itself is
:meth:`HandOptimizer.update`, written out below with tensor operations for one parameter
``p`` and its gradient ``g``. The comment beside each line gives the formula; the in-place
form (``m.mul_(b1).add_(g, alpha=1 - b1)`` for ``m <- b1 m + (1 - b1) g``) only avoids
allocating a new tensor on every step.

Hyperparameters and their defaults are those of ``torch.optim`` (same names, same
meaning), so the configs of ``conf/optimizer`` select them, and
``python -m mnistlab.gradcheck`` checks each one against ``torch.optim`` step by step.

L2 weight decay (``weight_decay``) adds the gradient of ``wd/2 * ||p||^2``, i.e. ``wd * p``,
to ``g`` before the update (torch's coupled form); AdamW instead shrinks the weights
directly, ``p <- p - lr * wd * p`` (decoupled, Loshchilov & Hutter 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class HandOptimizer(torch.optim.Optimizer):
    """Base class: :meth:`step` calls :meth:`update` for every parameter that has a gradient."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        if defaults["lr"] <= 0:
            raise ValueError(f"lr={defaults['lr']} must be > 0")
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:  # Lightning runs its pre-step hooks in the closure
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, self.state[p], group)
        return loss

    def update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Change ``p`` in place given its gradient ``g``; ``state`` persists between steps."""
        raise NotImplementedError


class SGD(HandOptimizer):
    """Stochastic gradient descent, with heavy-ball or Nesterov momentum when ``momentum > 0``.

    Plain:     ``p <- p - lr g``
    Momentum:  ``v <- mu v + (1 - dampening) g`` (``v = g`` on the first step), ``p <- p - lr v``
    Nesterov:  the same ``v``, then ``p <- p - lr (g + mu v)``: the step looks ahead along ``v``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum needs momentum > 0 and dampening = 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        super().__init__(params, defaults)

    def update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd:
            g = g + wd * p  # L2 weight decay
        if mu:
            if "velocity" not in state:
                v = state["velocity"] = g.clone()  # v_1 = g_1
            else:
                v = state["velocity"]
                v.mul_(mu).add_(g, alpha=1 - group["dampening"])  # v <- mu v + (1 - d) g
            g = g + mu * v if group["nesterov"] else v
        p.add_(g, alpha=-lr)  # p <- p - lr g


class RMSprop(HandOptimizer):
    """RMSProp (Hinton, lecture 6e): divide the step by a running root mean square of ``g``.

    ``s <- alpha s + (1 - alpha) g^2``; ``p <- p - lr g / (sqrt(s) + eps)``.
    ``centered``: use the variance, ``s - gbar^2`` with ``gbar <- alpha gbar + (1 - alpha) g``.
    ``momentum > 0``: ``v <- mu v + g / (sqrt(s) + eps)``, ``p <- p - lr v``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )
        super().__init__(params, defaults)

    def update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        wd, mu = group["weight_decay"], group["momentum"]
        if not state:
            state["square_avg"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
            if mu:
                state["velocity"] = torch.zeros_like(p)
        if wd:
            g = g + wd * p  # L2 weight decay
        s = state["square_avg"]
        s.mul_(alpha).addcmul_(g, g, value=1 - alpha)  # s <- alpha s + (1 - alpha) g^2
        if group["centered"]:
            gbar = state["grad_avg"]
            gbar.mul_(alpha).add_(g, alpha=1 - alpha)  # gbar <- alpha gbar + (1 - alpha) g
            rms = (s - gbar * gbar).sqrt() + eps
        else:
            rms = s.sqrt() + eps
        if mu:
            v = state["velocity"]
            v.mul_(mu).addcdiv_(g, rms)  # v <- mu v + g / rms
            p.add_(v, alpha=-lr)  # p <- p - lr v
        else:
            p.addcdiv_(g, rms, value=-lr)  # p <- p - lr g / rms


class Adagrad(HandOptimizer):
    """Adagrad (Duchi et al. 2011): ``G <- G + g^2``, ``p <- p - lr_t g / (sqrt(G) + eps)``.

    The step shrinks as squared gradients pile up; ``lr_t = lr / (1 + (t - 1) lr_decay)``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )
        super().__init__(params, defaults)

    def update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = 0
            state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
        state["step"] += 1
        t = state["step"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p  # L2 weight decay
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        G = state["sum"]
        G.addcmul_(g, g)  # G <- G + g^2
        p.addcdiv_(g, G.sqrt() + group["eps"], value=-lr_t)  # p <- p - lr_t g / (sqrt(G) + eps)


class Adam(HandOptimizer):
    """Adam (Kingma & Ba 2015): momentum on ``g`` and an RMSProp scale, both bias-corrected.

    ``m <- b1 m + (1 - b1) g``;  ``v <- b2 v + (1 - b2) g^2``;  at step ``t``:
    ``p <- p - lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)``.
    The corrections undo the zero start of ``m`` and ``v``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["m"] = torch.zeros_like(p)
            state["v"] = torch.zeros_like(p)
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        if wd and group["decoupled_weight_decay"]:
            p.mul_(1 - lr * wd)  # AdamW: p <- p - lr wd p
        elif wd:
            g = g + wd * p  # L2 weight decay
        m.mul_(b1).add_(g, alpha=1 - b1)  # m <- b1 m + (1 - b1) g
        v.mul_(b2).addcmul_(g, g, value=1 - b2)  # v <- b2 v + (1 - b2) g^2
        denom = v.sqrt() / math.sqrt(1 - b2**t) + eps  # sqrt(v_hat) + eps
        p.addcdiv_(m, denom, value=-lr / (1 - b1**t))  # p <- p - lr m_hat / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (default ``weight_decay=0.01``, as ``torch.optim.AdamW``)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, decoupled_weight_decay=True)


class NAdam(HandOptimizer):
    """Nadam (Dozat 2016): Adam whose momentum step looks ahead, as Nesterov's does.

    The momentum coefficient warms up, ``mu_t = b1 (1 - 0.5 * 0.96^(t psi))`` with
    ``psi = momentum_decay``; with ``P_t = mu_1 ... mu_t``, the step mixes the current
    gradient and the next step's momentum:
    ``p <- p - lr [(1 - mu_t) / (1 - P_t) g + mu_{t+1} / (1 - P_t mu_{t+1}) m] / (sqrt(v_hat) + eps)``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        psi = group["momentum_decay"]
        if not state:
            state["step"] = 0
            state["mu_product"] = 1.0
            state["m"] = torch.zeros_like(p)
            state["v"] = torch.zeros_like(p)
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        if wd and group["decoupled_weight_decay"]:
            p.mul_(1 - lr * wd)  # p <- p - lr wd p
        elif wd:
            g = g + wd * p  # L2 weight decay
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))  # mu_t
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))  # mu_{t+1}
        state["mu_product"] *= mu  # P_t
        P = state["mu_product"]
        m.mul_(b1).add_(g, alpha=1 - b1)  # m <- b1 m + (1 - b1) g
        v.mul_(b2).addcmul_(g, g, value=1 - b2)  # v <- b2 v + (1 - b2) g^2
        denom = (v / (1 - b2**t)).sqrt() + eps  # sqrt(v_hat) + eps
        p.addcdiv_(g, denom, value=-lr * (1 - mu) / (1 - P))  # the current gradient's part
        p.addcdiv_(m, denom, value=-lr * mu_next / (1 - P * mu_next))  # the look-ahead momentum


#: the ``torch.optim`` class a ``conf/optimizer`` config names -> its hand-written counterpart
HAND_WRITTEN: dict[type[torch.optim.Optimizer], type[HandOptimizer]] = {
    torch.optim.SGD: SGD,
    torch.optim.RMSprop: RMSprop,
    torch.optim.Adagrad: Adagrad,
    torch.optim.Adam: Adam,
    torch.optim.AdamW: AdamW,
    torch.optim.NAdam: NAdam,
}
