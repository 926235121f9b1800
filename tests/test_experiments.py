"""Study presets: each composes, builds, and expands to the number of jobs its comment promises."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import CONF, compose_config
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mnistlab.config import cpu_share, validate
from mnistlab.factory import build

STUDIES = {
    "baseline": 3,
    "depth": 15,
    "width": 15,
    "activation": 15,
    "skip": 12,
    "optimizers": 21,
    "optimizers_tuned": 21,
    "lr": 21,
    "schedules": 12,
    "batch_size": 15,
    "regularization": 18,
    "init": 12,
    "loss": 6,
    "vanishing_gradients": 6,
    "dead_neurons": 6,
    "mlp_vs_cnn": 24,
    "softmax_and_dbsnet": 8,
    "transfer": 18,
}


def sweep_jobs(overrides: list[str], sweeps: tuple[str, ...] = ()) -> list[list[str]]:
    """The jobs Hydra's basic sweeper launches for ``-m <overrides> <sweeps>`` (preset params included)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params or {})
    sweep = [f"{k}={v}" for k, v in params.items()] + overrides + list(sweeps)
    parsed = OverridesParser.create().parse_overrides(sweep)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def test_every_study_of_the_issue_has_a_preset():
    presets = {p.stem for p in (CONF / "experiment").glob("*.yaml")}
    assert set(STUDIES) <= presets


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_preset_expands_to_the_jobs_its_comment_promises(name):
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_")
    promised = re.search(r"# Jobs: .*?(\d+)\.\s+python train.py -m experiment=" + name, text)
    assert promised, (
        f"{name}.yaml lacks a '# Jobs: ... = N.  python train.py -m experiment={name}' line"
    )
    jobs = sweep_jobs([f"experiment={name}"])
    assert len(jobs) == STUDIES[name] == int(promised.group(1))
    seeds = {o for job in jobs for o in job if o.startswith("seed=")}
    assert len(seeds) >= 2, f"{name} repeats no seeds"


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_job_of_a_preset_composes_and_builds(name, tmp_path):
    """Each job's config composes and validates; each distinct model in it is built (no data, no training)."""
    jobs = sweep_jobs([f"experiment={name}"])
    configs, models = set(), set()
    for job in jobs:
        key = tuple(o for o in job if not o.startswith("seed="))
        if key in configs:
            continue
        configs.add(key)
        cfg = compose_config([f"experiment={name}", *job], output_dir=tmp_path)
        validate(cfg)
        model = OmegaConf.to_yaml(cfg.model, resolve=True) + OmegaConf.to_yaml(
            cfg.module, resolve=True
        )
        if (
            model not in models
        ):  # building the same net again tests nothing new (dbsnet: 12M weights)
            models.add(model)
            _, module = build(cfg)
            assert module.net.num_classes == 10


def test_depth_preset_sweeps_the_hidden_layer_counts_the_issue_names():
    values = {
        o.split("=", 1)[1]
        for job in sweep_jobs(["experiment=depth"])
        for o in job
        if "hidden_sizes" in o
    }
    depths = sorted(len(yaml.safe_load(v)) for v in values)
    assert depths == [1, 2, 3, 5, 8]


def test_mlp_vs_cnn_variation_sets_the_named_knobs(tmp_path):
    cfg = compose_config(
        ["experiment=mlp_vs_cnn", "model=cnn", "variation=high_lr"], output_dir=tmp_path
    )
    assert cfg.optimizer.lr == 3e-3 and cfg.model.dropout == 0.25
    cfg = compose_config(
        ["experiment=mlp_vs_cnn", "model=mlp", "variation=high_dropout"], output_dir=tmp_path
    )
    assert cfg.model.dropout == 0.5 and cfg.optimizer.lr == 1e-3


def test_command_line_sweep_multiplies_with_the_preset():
    jobs = sweep_jobs(["experiment=baseline"], ("model=softmax,mlp,cnn", "optimizer=sgd,adam"))
    assert len(jobs) == 3 * 2 * 3


def test_studies_switch_on_their_diagnostics(tmp_path):
    cfg = compose_config(["experiment=vanishing_gradients"], output_dir=tmp_path)
    assert {"model_checkpoint", "grad_norms", "activation_stats"} <= set(cfg.callbacks)
    cfg = compose_config(["experiment=init"], output_dir=tmp_path)
    assert "neuron_grads" in cfg.callbacks
    cfg = compose_config(["callbacks=diagnostics"], output_dir=tmp_path)
    assert {
        "grad_norms",
        "activation_stats",
        "weight_histograms",
        "neuron_grads",
        "tsne",
        "latency",
    } <= set(cfg.callbacks)
    assert "grad_norms" not in compose_config([], output_dir=tmp_path).callbacks


def test_joblib_launcher_splits_the_cores_among_jobs():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["launcher=joblib", "hydra.launcher.n_jobs=2"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    HydraConfig.instance().set_config(cfg)  # what a launched job sees: ${hydra:...} resolves
    try:
        assert cfg.cpu_threads == cpu_share(2)
    finally:
        HydraConfig.instance().cfg = None
    assert cpu_share(2, cores=2) == 1
    assert cpu_share(2, cores=16) == 8
    assert cpu_share(-1, cores=8) == 1  # one job per core
    assert cpu_share(4, cores=2) == 1  # never below one thread


def test_optuna_preset_maximizes_val_acc_best_in_a_journal_by_default():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize" and sweeper.storage is None
    assert cfg.optimized_metric == "val/acc_best"
    assert "optimizer.lr" in sweeper.params
