"""The hand-written network and optimizers (mnistlab.scratch) against autograd and torch.optim,
and trained through the lab: configs, refusals, diagnostics, checkpoints."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch
from conftest import CONF, requires_data
from hydra.utils import instantiate

from mnistlab import gradcheck
from mnistlab.checkpoint import load_model
from mnistlab.errors import ConfigError
from mnistlab.factory import build, build_scheduler_factory
from mnistlab.gradcheck import check_gradients, compare_optimizer
from mnistlab.models import MLP
from mnistlab.optim import parameter_groups
from mnistlab.run import train
from mnistlab.scratch import ACTIVATION_FUNCTIONS, HandOptimizer, ScratchMLP
from mnistlab.scratch import optimizers as hand
from mnistlab.scratch.lab import hand_written_optimizer

OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))
HAND_CLASS = {
    "adagrad": hand.Adagrad,
    "adam": hand.Adam,
    "adamw": hand.AdamW,
    "momentum": hand.SGD,
    "nadam": hand.NAdam,
    "nesterov": hand.SGD,
    "rmsprop": hand.RMSprop,
    "sgd": hand.SGD,
}


def small_net(activation: str = "tanh", init: str = "default", seed: int = 0) -> ScratchMLP:
    """A 20-7-6-5 net in float64: every check runs in milliseconds."""
    torch.manual_seed(seed)
    return ScratchMLP(5, (1, 4, 5), hidden_sizes=(7, 6), activation=activation, init=init).double()


def batch(n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 5, generator=generator, dtype=torch.float64)
    return x, torch.randint(5, (n,), generator=generator)


# --- gradients ------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("activation", sorted(ACTIVATION_FUNCTIONS))
def test_gradients_equal_autograd_and_finite_differences(activation: str, loss: str) -> None:
    net = small_net(activation)
    x, labels = batch()
    checks = check_gradients(net, x, labels, loss, samples=6)
    assert [c.name for c in checks] == [n for n, _ in net.named_parameters()]
    for c in checks:
        assert c.grad_norm > 1e-4, f"{c.name}: a vanishing gradient would make the check vacuous"
        assert c.autograd_error <= 1e-10, c
        assert c.fd_error <= 1e-6, c


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_label_smoothing_gradients_match(loss: str) -> None:
    net = small_net("relu", init="he")
    x, labels = batch()
    for c in check_gradients(net, x, labels, loss, label_smoothing=0.1):
        assert c.autograd_error <= 1e-10 and c.fd_error <= 1e-6, c


def test_loss_equals_the_lab_criterion() -> None:
    """The loss values themselves (not only gradients) are the ClassifierModule's."""
    from mnistlab.classifier_module import ClassifierModule

    net = small_net("sigmoid")
    x, labels = batch()
    for loss in ("ce", "mse"):
        module = ClassifierModule(
            net, optimizer=functools.partial(torch.optim.SGD, lr=0.1), loss=loss
        )
        value, logits = net.loss_and_gradients(x, labels, loss)
        expected = module.criterion(net(x), labels)
        assert torch.allclose(value, expected, rtol=1e-12, atol=0), loss
        assert torch.equal(logits, net(x))


class SignFlippedBackward(ScratchMLP):
    """A broken backward pass: the second hidden layer's weight gradient has the wrong sign."""

    def backward_pass(self, cache, dlogits):
        grads = super().backward_pass(cache, dlogits)
        dW, db = grads[1]
        grads[1] = (-dW, db)
        return grads


def test_checker_catches_a_sign_flipped_backward() -> None:
    torch.manual_seed(0)
    net = SignFlippedBackward(5, (1, 4, 5), hidden_sizes=(7, 6), activation="tanh").double()
    x, labels = batch()
    checks = {c.name: c for c in check_gradients(net, x, labels)}
    broken = checks.pop("layers.1.weight")
    assert not broken.passed
    assert broken.autograd_error > 0.5 and broken.fd_error > 0.5  # opposite sign: error ~ 2
    assert all(c.passed for c in checks.values()), checks  # the rest is still right


def test_gradcheck_command_passes_and_fails(monkeypatch, capsys) -> None:
    args = ["model.hidden_sizes=[8]", "model.activation=sigmoid", "module.loss=mse"]
    assert gradcheck.main([*args, "--steps", "3", "--optimizers", "adam", "nadam"]) == 0
    out = capsys.readouterr().out
    assert "layers.0.weight" in out and "nadam" in out and out.rstrip().endswith("PASS")

    class FlipFirst(ScratchMLP):
        def backward_pass(self, cache, dlogits):
            grads = super().backward_pass(cache, dlogits)
            grads[0] = (-grads[0][0], grads[0][1])
            return grads

    monkeypatch.setattr(gradcheck, "ScratchMLP", FlipFirst)
    assert gradcheck.main([*args, "--steps", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out.splitlines()[-1]
    assert next(line for line in out.splitlines() if line.startswith("layers.0.weight")).endswith(
        "FAIL"
    )


def test_gradcheck_refuses_a_non_mlp_config(capsys) -> None:
    assert gradcheck.main(["model=cnn", "--steps", "0"]) == 1
    assert "gradcheck checks MLP configs" in capsys.readouterr().err


def test_bf16_autocast_keeps_float32_gradients() -> None:
    """trainer.precision=bf16-mixed: the hand matmuls run in bf16, the stored gradients stay
    float32 and as close to float32's as autograd's bf16 gradients are (a few percent)."""
    torch.manual_seed(0)
    net = ScratchMLP(10, (1, 28, 28), hidden_sizes=(64, 32))
    x, labels = torch.randn(32, 1, 28, 28), torch.randint(10, (32,))
    net.loss_and_gradients(x, labels)
    exact = [p.grad.clone() for p in net.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = net.loss_and_gradients(x, labels)
    for g, p in zip(exact, net.parameters(), strict=True):
        assert p.grad.dtype == torch.float32
        assert float((g - p.grad).norm() / g.norm()) < 0.15
    assert torch.isfinite(loss)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gradients_and_optimizers_on_cuda() -> None:
    net = small_net("gelu").cuda()
    x, labels = batch()
    for c in check_gradients(net, x.cuda(), labels.cuda(), "mse"):
        assert c.autograd_error <= 1e-10 and c.fd_error <= 1e-6, c
    batches = [(x.cuda(), labels.cuda())]
    factory = functools.partial(torch.optim.NAdam, lr=0.01, weight_decay=0.01)
    assert compare_optimizer(factory, net, batches, 100).max_abs_diff <= 1e-6


# --- initialization ---------------------------------------------------------------------------
def test_default_init_draws_the_autograd_mlps_weights() -> None:
    torch.manual_seed(3)
    scratch = ScratchMLP(10, (1, 28, 28), hidden_sizes=(32, 16))
    torch.manual_seed(3)
    autograd = MLP(10, (1, 28, 28), hidden_sizes=(32, 16))
    linears = [m for m in autograd.modules() if isinstance(m, torch.nn.Linear)]
    for dense, linear in zip(scratch.dense_layers(), linears, strict=True):
        assert torch.equal(dense.weight, linear.weight) and torch.equal(dense.bias, linear.bias)


def test_init_scales() -> None:
    torch.manual_seed(0)
    he = ScratchMLP(10, (1, 28, 28), hidden_sizes=(400,), activation="relu", init="he")
    assert he.layers[0].weight.std().item() == pytest.approx((2 / 784) ** 0.5, rel=0.02)
    bound = (6 / (784 + 400)) ** 0.5  # standard Glorot: gain 1, as model=mlp's init=xavier
    glorot = ScratchMLP(10, (1, 28, 28), hidden_sizes=(400,), activation="tanh", init="glorot")
    assert glorot.layers[0].weight.abs().max().item() == pytest.approx(bound, rel=0.01)
    assert torch.count_nonzero(glorot.layers[0].bias) == 0
    scaled = ScratchMLP(10, (1, 28, 28), hidden_sizes=(400,), activation="tanh", init="xavier_gain")
    assert scaled.layers[0].weight.abs().max().item() == pytest.approx(5 / 3 * bound, rel=0.01)
    normal = ScratchMLP(10, (1, 28, 28), hidden_sizes=(400,), init="normal", init_std=0.05)
    assert normal.layers[0].weight.std().item() == pytest.approx(0.05, rel=0.02)


def test_zero_init_keeps_every_hidden_unit_identical() -> None:
    net = small_net("sigmoid", init="zeros")
    x, labels = batch()
    optimizer = hand.SGD(net.parameters(), lr=0.5)
    for _ in range(5):
        net.loss_and_gradients(x, labels)
        optimizer.step()
    W = net.layers[1].weight
    assert torch.allclose(W, W[0].expand_as(W))  # all rows equal: the symmetry never breaks
    assert W.abs().sum() > 0  # ... although the layer did learn something


# --- optimizers -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_follows_torch_optim_for_100_steps(name: str, make_config) -> None:
    cfg = make_config("model=scratch_mlp", f"optimizer={name}", "optimizer.weight_decay=0.01")
    factory = instantiate(cfg.optimizer, _convert_="all")
    schedule, _, _ = build_scheduler_factory(cfg)  # per-step cosine
    net = small_net("relu")
    batches = [batch(8, seed) for seed in range(4)]
    for scheduler in (None, schedule):
        result = compare_optimizer(factory, net, batches, 100, scheduler, name=name)
        assert result.max_abs_diff <= 1e-6, result
        assert result.moved > 1e-2, result  # the parameters did travel
        assert result.passed


def test_weight_decay_changes_the_path() -> None:
    """The comparison above is sensitive to weight decay (so it checks that term too)."""
    net = small_net("relu")
    batches = [batch()]
    runs = []
    for wd in (0.0, 0.1):
        model = copy.deepcopy(net)
        optimizer = hand.Adam(parameter_groups(model), lr=0.01, weight_decay=wd)
        for _ in range(20):
            model.loss_and_gradients(*batches[0])
            optimizer.step()
        runs.append(model.layers[0].weight.detach())
    assert (runs[0] - runs[1]).abs().max() > 1e-3


def test_optimizer_state_survives_a_checkpoint_round_trip() -> None:
    """state_dict/load_state_dict (what Lightning checkpoints hold) resume the same trajectory."""
    x, labels = batch()
    net = small_net()
    optimizer = hand.NAdam(net.parameters(), lr=0.01)
    for _ in range(5):
        net.loss_and_gradients(x, labels)
        optimizer.step()
    clone = copy.deepcopy(net)
    resumed = hand.NAdam(clone.parameters(), lr=0.01)
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    for model, opt in ((net, optimizer), (clone, resumed)):
        for _ in range(5):
            model.loss_and_gradients(x, labels)
            opt.step()
    for a, b in zip(net.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)


# --- the lab: configs and refusals --------------------------------------------------------------
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_scratch_mlp_composes_with_each_optimizer(name: str, make_config) -> None:
    _, module = build(make_config("model=scratch_mlp", f"optimizer={name}"))
    assert isinstance(module.net, ScratchMLP)
    assert module.automatic_optimization is False
    optimizer = hand_written_optimizer(module.optimizer_factory)(
        params=parameter_groups(module.net)
    )
    assert type(optimizer) is HAND_CLASS[name]
    assert isinstance(optimizer, HandOptimizer)
    assert optimizer.defaults["lr"] == module.optimizer_factory.keywords["lr"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["module.l1=1e-5"], "module.l1=1e-05 is not written by hand for model=scratch_mlp"),
        (["regularization=dropout"], "dropout and batch norm are not written by hand"),
        (["model.batch_norm=true"], "dropout and batch norm are not written by hand"),
        (["+optimizer.amsgrad=true"], "optimizer.amsgrad=True is not written by hand"),
        (["module.compile=true"], "module.compile=true does not apply to model=scratch_mlp"),
        (["trainer.gradient_clip_val=1.0"], "gradient clipping is not written by hand"),
        (["+trainer.accumulate_grad_batches=4"], "gradient accumulation is not written by hand"),
        (["trainer.precision=16-mixed"], "trainer.precision=16-mixed is not supported"),
        (["model.activation=swish"], "model.activation='swish' is not written by hand"),
        (
            ["optimizer._target_=torch.optim.Adamax"],
            "optimizer Adamax is not written by hand for model=scratch_mlp",
        ),
    ],
)
def test_refused_combinations_say_so_in_one_line(
    overrides: list[str], message: str, make_config
) -> None:
    with pytest.raises(ConfigError) as info:
        build(make_config("model=scratch_mlp", *overrides))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_identity_activation_is_not_a_diagnostics_layer() -> None:
    from mnistlab.artifacts.layers import activation_layers, weight_layers

    net = ScratchMLP(10, (1, 28, 28), hidden_sizes=(8, 8), activation="identity")
    assert activation_layers(net) == []
    assert [n for n, _ in weight_layers(net)] == ["layers.0", "layers.1", "head"]
    tanh = ScratchMLP(10, (1, 28, 28), hidden_sizes=(8, 8), activation="tanh")
    assert [(n, k) for n, _, k in activation_layers(tanh)] == [
        ("activations.0", "tanh"),
        ("activations.1", "tanh"),
    ]


# --- the lab: training on real MNIST ------------------------------------------------------------
QUIET = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
]


@pytest.mark.slow
@requires_data
def test_short_fit_on_mnist_clears_90_percent(make_config, data_root) -> None:
    cfg = make_config(
        "model=scratch_mlp",
        "optimizer=adam",
        f"data.root={data_root}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=200",
        "trainer.num_sanity_val_steps=0",
        "callbacks=none",
        *QUIET,
    )
    metrics = train(cfg)
    assert metrics["status"] == "ok" and metrics["model"] == "ScratchMLP"
    assert metrics["test/acc"] > 0.90, metrics


@pytest.mark.slow
@requires_data
def test_diagnostics_schedulers_and_checkpoints_see_the_hand_written_engine(
    make_config, data_root, tmp_path
) -> None:
    cfg = make_config(
        "model=scratch_mlp",
        "optimizer=momentum",
        f"data.root={data_root}",
        "debug=fast",
        "callbacks=[default,grad_norms,neuron_grads,activation_stats]",
        "callbacks.grad_norms.every_n_steps=1",
        # debug=fast keeps no checkpoint; this test reads one, so put the checkpoint back
        "trainer.enable_checkpointing=true",
        f"+callbacks.model_checkpoint={{_target_: lightning.pytorch.callbacks.ModelCheckpoint, dirpath: {tmp_path}/checkpoints, filename: best, monitor: val/acc, mode: max}}",
        *QUIET,
    )
    metrics = train(cfg)
    assert metrics["status"] == "ok"
    out = tmp_path / "artifacts" / "diagnostics"
    norms = (out / "grad_norms.csv").read_text().splitlines()
    assert norms[0] == "step,epoch,layers.0,layers.1,head" and len(norms) == 1 + 5
    assert all(float(v) > 0 for line in norms[1:] for v in line.split(",")[2:])
    traces = json.loads((out / "neuron_grads.json").read_text())
    assert traces["steps"] == 5 and set(traces["layers"]) == {"layers.0", "layers.1"}
    assert not traces["layers"]["layers.0"]["all_zero"]
    stats = json.loads((out / "activation_stats.json").read_text())
    assert stats["best"]["label"] == "best = end (epoch 1)"  # the scratch net's checkpoint loads
    assert [(s["layer"], s["kind"]) for s in stats["best"]["layers"]] == [
        ("activations.0", "relu"),
        ("activations.1", "relu"),
    ]
    # the default cosine schedule was stepped by hand: lr reaches 0 after the 5 steps
    checkpoint = torch.load(metrics["checkpoint"], weights_only=True)
    assert checkpoint["global_step"] == 5
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0)
    assert "velocity" in checkpoint["optimizer_states"][0]["state"][0]
    # eval / predict path: the checkpoint rebuilds the same ScratchMLP and its predictions
    _, _, module = load_model(metrics["checkpoint"])
    assert isinstance(module.net, ScratchMLP)
    x = torch.randn(3, 1, 28, 28)
    state = checkpoint["state_dict"]
    weights = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
    reference = ScratchMLP(10, (1, 28, 28))
    reference.load_state_dict(weights)
    assert torch.equal(module(x), reference(x))
    assert (tmp_path / "artifacts" / "gradcam.png").is_file()  # attribution through the net


@pytest.mark.slow
@requires_data
def test_plateau_schedule_is_stepped_as_lightning_steps_it(
    make_config, data_root, tmp_path
) -> None:
    """Manual optimization leaves schedulers to the module: the lr path must equal model=mlp's."""
    lrs = {}
    for model in ("mlp", "scratch_mlp"):
        out = tmp_path / model
        cfg = make_config(
            f"model={model}",
            f"data.root={data_root}",
            "debug=fast",
            "trainer.max_epochs=4",
            "scheduler=plateau",
            "optimizer.lr=0.001",
            "scheduler.monitor=val/loss",
            "scheduler.mode=max",  # a falling loss is "no improvement": halve each epoch
            "scheduler.patience=0",
            "callbacks=none",
            "test=false",
            *QUIET,
        )
        cfg.paths.output_dir = str(out)
        train(cfg)
        rows = (out / "history.csv").read_text().splitlines()[1:]
        lrs[model] = [float(row.split(",")[1]) for row in rows]
    assert lrs["scratch_mlp"] == lrs["mlp"] == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])
