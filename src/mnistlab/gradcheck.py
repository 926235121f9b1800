"""Check the hand-written network and optimizers of ``mnistlab.scratch`` against PyTorch.

    python -m mnistlab.gradcheck                                  # model=scratch_mlp defaults
    python -m mnistlab.gradcheck model.activation=tanh module.loss=mse
    python -m mnistlab.gradcheck model=mlp model.hidden_sizes=[64,32] --steps 200

Overrides are those of ``python train.py`` (any MLP config: ``model=scratch_mlp`` or ``mlp``).
On one batch of random inputs, in float64 and on the same weights, it compares

1. the hand-written gradients with autograd's: the lab's autograd ``MLP`` and the loss of
   ``ClassifierModule`` (relative error per layer, must be <= 1e-10);
2. the hand-written gradients with central finite differences of the hand-written loss,
   ``(L(w + h) - L(w - h)) / 2h``, on a few sampled weights per layer (<= 1e-6);
3. each hand-written optimizer with its ``torch.optim`` original: ``--steps`` steps from
   the same start on the same batches, with the run's per-step scheduler (cosine by
   default), and the parameters must agree to 1e-6.

Prints a table per check and PASS or FAIL; the exit code is 1 on FAIL. This is how a
student checks a change to ``src/mnistlab/scratch/network.py`` or ``optimizers.py``.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor

from mnistlab.config import register_resolvers
from mnistlab.errors import ConfigError, MnistlabError
from mnistlab.factory import build_scheduler_factory, instantiate
from mnistlab.scratch.lab import hand_written_optimizer
from mnistlab.scratch.network import LOSS_FUNCTIONS, ScratchMLP, target_distribution

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
GRAD_TOL = 1e-10  # hand vs autograd, relative, float64
FD_TOL = 1e-6  # hand vs central finite differences, relative, float64
OPTIM_TOL = 1e-6  # hand vs torch.optim parameters after N steps, absolute
#: model config keys that describe an MLP (model=mlp and model=scratch_mlp share them)
MLP_KEYS = ("hidden_sizes", "activation", "init", "init_std", "dropout", "batch_norm")


# --- configuration ------------------------------------------------------------------------
def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, as ``python train.py`` composes it (model=scratch_mlp
    unless a ``model=`` override says otherwise)."""
    from hydra import compose, initialize_config_dir

    if not CONF_DIR.is_dir():
        raise ConfigError(f"config folder {CONF_DIR} not found; run from a source checkout")
    register_resolvers()
    overrides = list(overrides)
    if not any(o.split("=", 1)[0].lstrip("+~") == "model" for o in overrides):
        overrides.insert(0, "model=scratch_mlp")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        except Exception as err:  # a Hydra override error, told in one line
            raise ConfigError(str(err).strip().splitlines()[0]) from None
    with open_dict(cfg):
        del cfg.hydra
    return cfg


def build_network(cfg: DictConfig) -> ScratchMLP:
    """The hand-written MLP of the config's model (``scratch_mlp``, or ``mlp``'s sizes and settings)."""
    from mnistlab.data.datamodule import get_spec

    target = str(OmegaConf.select(cfg, "model._target_", default=""))
    if target.rsplit(".", 1)[-1] not in ("ScratchMLP", "MLP"):
        raise ConfigError(
            f"gradcheck checks MLP configs (model=scratch_mlp or model=mlp), not {target}"
        )
    spec = get_spec(OmegaConf.select(cfg, "data.dataset", default="mnist"))
    settings = {k: cfg.model[k] for k in MLP_KEYS if k in cfg.model}
    settings = OmegaConf.to_container(OmegaConf.create(settings), resolve=True)
    return ScratchMLP(spec.num_classes, spec.input_shape, **settings)


# --- gradients ------------------------------------------------------------------------------
@dataclass
class LayerCheck:
    """One parameter tensor's comparison: relative errors vs autograd and finite differences."""

    name: str
    shape: tuple[int, ...]
    grad_norm: float
    autograd_error: float
    fd_error: float
    fd_samples: int

    @property
    def passed(self) -> bool:
        return self.autograd_error <= GRAD_TOL and self.fd_error <= FD_TOL


def relative_error(a: Tensor, b: Tensor) -> float:
    """``||a - b|| / max(||a||, ||b||)`` (0 when both are 0)."""
    scale = max(float(a.norm()), float(b.norm()))
    return float((a - b).norm()) / scale if scale > 0 else 0.0


def hand_gradients(
    net: ScratchMLP, x: Tensor, labels: Tensor, loss: str, label_smoothing: float
) -> dict[str, Tensor]:
    """The hand-written backward pass's gradient of every parameter, by name."""
    net.loss_and_gradients(x, labels, loss, label_smoothing)
    grads = {name: p.grad.detach().clone() for name, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    return grads


def autograd_gradients(
    net: ScratchMLP, x: Tensor, labels: Tensor, loss: str, label_smoothing: float
) -> dict[str, Tensor]:
    """Autograd's gradients for the same weights: the lab's ``MLP`` and ``ClassifierModule`` loss.

    An activation the autograd lab lacks (one a student added to network.py) falls back to
    autograd through the hand-written forward pass, which still checks the backward pass.
    """
    from mnistlab.classifier_module import ClassifierModule
    from mnistlab.models import ACTIVATIONS, MLP

    kind = net.activations[0].kind if len(net.activations) else "relu"
    reference: torch.nn.Module = net
    names: dict[str, str] = {n: n for n, _ in net.named_parameters()}
    if kind in ACTIVATIONS:
        hidden = [layer.out_features for layer in net.layers]
        reference = MLP(net.num_classes, net.input_shape, hidden, kind).to(x.device, x.dtype)
        for i in range(len(net.layers)):  # body.0 is the Flatten, body.<i+1>.0 a Linear
            for what in ("weight", "bias"):
                names[f"layers.{i}.{what}"] = f"body.{i + 1}.0.{what}"
        for what in ("weight", "bias"):
            names[f"head.{what}"] = f"head.{what}"
        own = dict(net.named_parameters())
        with torch.no_grad():
            for mine, theirs in reference.named_parameters():
                key = next(k for k, v in names.items() if v == mine)
                theirs.copy_(own[key])
    module = ClassifierModule(
        reference,
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        loss=loss,
        label_smoothing=label_smoothing,
    )
    params = dict(reference.named_parameters())
    with torch.enable_grad():
        value = module.criterion(reference(x), labels)
        order = list(names)
        grads = torch.autograd.grad(value, [params[names[n]] for n in order])
    return dict(zip(order, grads, strict=True))


def hand_loss(
    net: ScratchMLP, x: Tensor, labels: Tensor, loss: str, label_smoothing: float
) -> float:
    """The hand-written forward pass and loss only (what finite differences differentiate)."""
    with torch.no_grad():
        logits, _ = net.forward_pass(x)
        T = target_distribution(labels, net.num_classes, label_smoothing, logits.dtype)
        return float(LOSS_FUNCTIONS[loss](logits, T)[0])


def finite_difference_errors(
    net: ScratchMLP,
    x: Tensor,
    labels: Tensor,
    loss: str,
    label_smoothing: float,
    grads: dict[str, Tensor],
    samples: int,
    h: float = 1e-6,
    seed: int = 0,
) -> dict[str, float]:
    """Relative error of the hand gradients vs ``(L(w + h) - L(w - h)) / 2h`` on sampled weights.

    Per tensor, ``samples`` entries are drawn at random among those whose hand gradient is
    at least the tensor's median magnitude: a float64 difference quotient resolves about
    1e-10 in absolute terms, too little to judge the near-zero gradients of the rest. A
    gradient the backward pass wrongly reports as 0 is still caught: the sampled entries
    are then the whole tensor.
    """
    generator = torch.Generator().manual_seed(seed)
    errors: dict[str, float] = {}
    for name, p in net.named_parameters():
        g = grads[name].flatten().cpu()
        magnitude = g.abs()
        candidates = torch.nonzero(magnitude >= magnitude.median()).flatten()
        pick = candidates[torch.randperm(len(candidates), generator=generator)[:samples]]
        flat = p.data.view(-1)
        numeric = torch.empty(len(pick), dtype=torch.float64)
        for j, index in enumerate(pick.tolist()):
            original = float(flat[index])
            flat[index] = original + h
            plus = hand_loss(net, x, labels, loss, label_smoothing)
            flat[index] = original - h
            minus = hand_loss(net, x, labels, loss, label_smoothing)
            flat[index] = original
            numeric[j] = (plus - minus) / (2 * h)
        errors[name] = relative_error(g[pick].double(), numeric)
    return errors


def check_gradients(
    net: ScratchMLP,
    x: Tensor,
    labels: Tensor,
    loss: str = "ce",
    label_smoothing: float = 0.0,
    samples: int = 5,
) -> list[LayerCheck]:
    """Hand vs autograd and vs finite differences for every parameter tensor of ``net``."""
    hand = hand_gradients(net, x, labels, loss, label_smoothing)
    auto = autograd_gradients(net, x, labels, loss, label_smoothing)
    fd = finite_difference_errors(net, x, labels, loss, label_smoothing, hand, samples)
    return [
        LayerCheck(
            name,
            tuple(p.shape),
            float(hand[name].norm()),
            relative_error(hand[name], auto[name]),
            fd[name],
            min(samples, p.numel()),
        )
        for name, p in net.named_parameters()
    ]


# --- optimizers -------------------------------------------------------------------------------
@dataclass
class OptimizerCheck:
    """Largest parameter difference between a hand-written optimizer and torch.optim after N steps."""

    name: str
    torch_class: str
    steps: int
    max_abs_diff: float
    moved: float  # largest distance any parameter travelled (shows the steps did something)

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= OPTIM_TOL and math.isfinite(self.moved)


def compare_optimizer(
    factory: Any,
    net: ScratchMLP,
    batches: Sequence[tuple[Tensor, Tensor]],
    steps: int = 100,
    scheduler: Any = None,
    loss: str = "ce",
    name: str = "",
) -> OptimizerCheck:
    """Train two copies of ``net`` for ``steps`` steps, one with ``factory`` (a ``torch.optim``
    partial) and one with its hand-written counterpart, both fed the hand-computed gradients
    of their own copy on the same ``batches``; return the largest parameter difference.

    ``scheduler``: an optional per-step LR scheduler partial applied to both (its ``auto``
    lengths become ``steps``).
    """
    import copy

    from mnistlab.optim import build_scheduler, parameter_groups

    start = {k: v.detach().clone() for k, v in net.named_parameters()}
    finals = []
    for make in (factory, hand_written_optimizer(factory)):
        model = copy.deepcopy(net)
        optimizer = make(params=parameter_groups(model))
        schedule = build_scheduler(scheduler, optimizer, steps, 1, "step") if scheduler else None
        for step in range(steps):
            x, labels = batches[step % len(batches)]
            model.loss_and_gradients(x, labels, loss)
            optimizer.step()
            if schedule is not None:
                schedule.step()
        finals.append({k: v.detach() for k, v in model.named_parameters()})
    torch_params, hand_params = finals
    diff = max(float((torch_params[k] - hand_params[k]).abs().max()) for k in start)
    moved = max(float((torch_params[k] - start[k]).abs().max()) for k in start)
    func = factory.func if isinstance(factory, functools.partial) else factory
    return OptimizerCheck(name or func.__name__, func.__name__, steps, diff, moved)


def optimizer_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "optimizer").glob("*.yaml"))


# --- report -----------------------------------------------------------------------------------
def format_gradient_table(checks: Sequence[LayerCheck]) -> str:
    rows = [
        f"{'layer':<18} {'shape':<12} {'|grad|':>10} {'vs autograd':>12} {'vs finite diff':>15}  ok",
    ]
    for c in checks:
        shape = "x".join(str(s) for s in c.shape)
        rows.append(
            f"{c.name:<18} {shape:<12} {c.grad_norm:>10.3e} {c.autograd_error:>12.2e} "
            f"{c.fd_error:>10.2e} ({c.fd_samples}) {' yes' if c.passed else ' FAIL'}"
        )
    return "\n".join(rows)


def format_optimizer_table(checks: Sequence[OptimizerCheck]) -> str:
    rows = [f"{'optimizer':<10} {'torch.optim':<12} {'steps':>5} {'max |dp|':>10} {'moved':>9}  ok"]
    for c in checks:
        rows.append(
            f"{c.name:<10} {c.torch_class:<12} {c.steps:>5} {c.max_abs_diff:>10.2e} "
            f"{c.moved:>9.2e} {' yes' if c.passed else ' FAIL'}"
        )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> bool:
    """All the checks of ``args``; prints the tables and returns whether every one passed."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = compose_config(args.overrides)
    loss = str(OmegaConf.select(cfg, "module.loss", default="ce"))
    smoothing = float(OmegaConf.select(cfg, "module.label_smoothing", default=0.0))
    if loss not in LOSS_FUNCTIONS:
        raise ConfigError(f"module.loss={loss!r} is unknown; choose one of: ce, mse")
    torch.manual_seed(args.seed)
    net = build_network(cfg).to(device=device, dtype=torch.float64)
    generator = torch.Generator().manual_seed(args.seed)

    def batch() -> tuple[Tensor, Tensor]:
        x = torch.randn(args.batch_size, *net.input_shape, generator=generator, dtype=torch.float64)
        labels = torch.randint(net.num_classes, (args.batch_size,), generator=generator)
        return x.to(device), labels.to(device)

    layers = net.dense_layers()
    sizes = "-".join(str(n) for n in [layers[0].in_features, *(d.out_features for d in layers)])
    kind = net.activations[0].kind if len(net.activations) else "none"
    print(
        f"ScratchMLP {sizes}, activation={kind}, init={cfg.model.get('init', 'default')}, "
        f"loss={loss}, label_smoothing={smoothing}; float64 on {device}, batch {args.batch_size}"
    )
    ok = True
    x, labels = batch()
    checks = check_gradients(net, x, labels, loss, smoothing, args.samples)
    print(
        f"\ngradients: relative error per layer (autograd <= {GRAD_TOL:g}, "
        f"finite differences on sampled weights <= {FD_TOL:g})"
    )
    print(format_gradient_table(checks))
    grads_ok = all(c.passed for c in checks)
    print("gradients:", "PASS" if grads_ok else "FAIL")
    ok &= grads_ok

    if args.steps > 0:
        batches = [batch() for _ in range(4)]
        scheduler, interval, _ = build_scheduler_factory(cfg)
        if interval != "step":
            scheduler = None
        what = scheduler.func.__name__ if isinstance(scheduler, functools.partial) else "none"
        names = args.optimizers or optimizer_names()
        results = []
        for name in names:
            opt_cfg = compose_config(
                [o for o in args.overrides if not o.startswith("optimizer=")]
                + [f"optimizer={name}"]
            ).optimizer
            with open_dict(opt_cfg):
                opt_cfg.weight_decay = args.weight_decay
            factory = instantiate(opt_cfg, _convert_="all")
            results.append(
                compare_optimizer(factory, net, batches, args.steps, scheduler, loss, name)
            )
        print(
            f"\noptimizers: hand-written vs torch.optim, {args.steps} steps from the same start, "
            f"weight_decay={args.weight_decay:g}, scheduler={what} (max |dp| <= {OPTIM_TOL:g})"
        )
        print(format_optimizer_table(results))
        optim_ok = all(r.passed for r in results)
        print("optimizers:", "PASS" if optim_ok else "FAIL")
        ok &= optim_ok
    print("\nPASS" if ok else "\nFAIL")
    return ok


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mnistlab.gradcheck",
        description=__doc__.split("\n")[0],
        epilog="Overrides are python train.py's, e.g. model.activation=tanh module.loss=mse "
        "model.hidden_sizes=[64,32] model.init=he module.label_smoothing=0.1.",
    )
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (Hydra syntax)")
    parser.add_argument("--batch-size", type=int, default=16, help="random inputs per check")
    parser.add_argument(
        "--samples", type=int, default=5, help="finite-difference weights per layer (default 5)"
    )
    parser.add_argument(
        "--steps", type=int, default=100, help="optimizer steps compared (0: skip; default 100)"
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"conf/optimizer names to compare (default: all of {', '.join(optimizer_names())})",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=1e-3,
        help="L2 weight decay for every compared optimizer (default 0.001, so that it is exercised)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.samples < 1 or args.steps < 0:
        parser.error("--batch-size and --samples must be >= 1, --steps >= 0")
    unknown = sorted(set(args.optimizers or ()) - set(optimizer_names()))
    if unknown:
        parser.error(
            f"--optimizers {' '.join(unknown)}: choose from {', '.join(optimizer_names())}"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return 0 if run(args) else 1
    except MnistlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
