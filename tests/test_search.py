"""The Optuna search: search-space syntax, settings checks, resume, parallel workers, pruning, report.

Most cases run tests/search_app/app.py, a fake task with a known objective (a second
each); one runs train.py on real data with a pruner that always prunes.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import CONF, REPO, requires_data
from hydra import compose, initialize_config_dir
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from mnistlab.errors import ConfigError
from mnistlab.search.space import override_for, parse_search_space
from mnistlab.search.study import (
    SearchSettings,
    make_pruner,
    make_storage,
    resolve_storage,
    trial_seed,
)

APP = REPO / "tests" / "search_app" / "app.py"


def _env() -> dict[str, str]:
    src = str(REPO / "src")
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src,
        "MNISTLAB_CPU_THREADS": "1",
        "MNISTLAB_DATA_ROOT": str(
            os.environ.get("MNISTLAB_DATA_ROOT", REPO.parent / "shared" / "data")
        ),
    }


def _fake(sweep_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(APP), "-m", f"hydra.sweep.dir={sweep_dir}", *overrides]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)


def _study(sweep_dir: Path, name: str = "fake") -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=make_storage(str(sweep_dir / "optuna.journal"))
    )


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


# --- the search-space syntax --------------------------------------------------------------


def test_distribution_syntax_maps_to_known_optuna_distributions():
    space = parse_search_space(
        {
            "optimizer.lr": "tag(log, interval(1e-4, 1e-2))",
            "model.dropout": "interval(0.0, 0.5)",
            "model.depth": "tag(int, interval(1, 8))",
            "data.batch_size": "range(32, 257, 32)",
            "mix": "range(0.1, 0.5, 0.1)",
            "width": "tag(log, range(16, 257))",
            "model.hidden_sizes": "choice([128], [256,128])",
            "model.activation": "relu,tanh",
            "seed": 3,
            "flag": True,
        }
    )
    d = space.distributions
    assert d["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert d["model.dropout"] == FloatDistribution(0.0, 0.5)
    assert d["model.depth"] == IntDistribution(1, 8)
    assert d["data.batch_size"] == IntDistribution(32, 256, step=32)  # range() excludes its end
    assert d["mix"] == FloatDistribution(0.1, 0.4, step=0.1)
    assert d["width"] == IntDistribution(16, 256, log=True)
    assert d["model.hidden_sizes"] == CategoricalDistribution(["[128]", "[256,128]"])
    assert d["model.activation"] == CategoricalDistribution(["relu", "tanh"])
    assert space.fixed == ["seed=3", "flag=true"]


def test_command_line_overrides_join_or_replace_the_search_space():
    space = parse_search_space(
        {"optimizer.lr": "interval(0.001, 0.1)", "model.dropout": "interval(0, 0.5)"},
        ["optimizer.lr=0.01", "seed=choice(1,2)", "debug=fast"],
    )
    assert set(space.distributions) == {"model.dropout", "seed"}
    assert space.distributions["seed"] == CategoricalDistribution([1, 2])
    assert space.fixed == ["optimizer.lr=0.01", "debug=fast"]


def test_sampled_values_become_overrides():
    assert override_for("a.lr", 0.000123456789, FloatDistribution(1e-5, 1, log=True)) == (
        "a.lr=0.000123457"
    )
    assert override_for("n", 64, IntDistribution(32, 256, step=32)) == "n=64"
    assert override_for("h", "[256,128]", CategoricalDistribution(["[256,128]"])) == "h=[256,128]"
    assert override_for("c", 0.1, CategoricalDistribution([0.1, 0.2])) == "c=0.1"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "uniform(0, 1)",
            "hydra.sweeper.params.x='uniform(0, 1)' is not a search-space expression",
        ),
        ("interval(1, 0)", "interval(a, b) needs a < b"),
        ("tag(log, interval(0, 1))", "a log-scale interval needs a > 0"),
        ("tag(cubic, interval(0, 1))", "unknown tag cubic"),
        ("tag(log, range(1, 64, 2))", "log-scale int range only with step 1"),
        ("range(5, 1)", "is empty"),
        ("choice(1, 1)", "lists a value twice"),
        ("glob(*)", "glob() is not a search space"),
    ],
)
def test_bad_search_space_names_the_value_and_the_syntax(text, message):
    with pytest.raises(ConfigError) as err:
        parse_search_space({"x": text})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


# --- settings ------------------------------------------------------------------------------


def _settings(**cfg) -> SearchSettings:
    return SearchSettings.from_config(cfg, "multirun/s", "/work")


@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            {"direction": "maximise"},
            "hydra.sweeper.direction=maximise must be maximize or minimize",
        ),
        ({"pruner": {"name": "medain"}}, "hydra.sweeper.pruner.name=medain is not a pruner"),
        (
            {"sampler": {"name": "tpe", "n_startup": 3}},
            "hydra.sweeper.sampler.n_startup: TPESampler",
        ),
        (
            {"direction": ["maximize", "minimize"], "pruner": {"name": "median"}},
            "prunes single-objective studies only",
        ),
        ({"monitor": "val/loss", "pruner": {"name": "median"}}, "moves against direction=maximize"),
        ({"direction": ["maximize", "minimize"], "objectives": ["val/acc_best"]}, "one metric per"),
        ({"n_trials": 0}, "hydra.sweeper.n_trials=0 must be a whole number >= 1"),
    ],
)
def test_bad_settings_fail_with_one_line_naming_the_value(cfg, message):
    with pytest.raises(ConfigError) as err:
        _settings(**cfg)
    assert message in str(err.value)


def test_pruner_none_ignores_the_options_of_the_preset_pruner():
    settings = _settings(pruner={"name": "none", "n_warmup_steps": 1})
    assert not settings.pruning
    assert type(make_pruner(settings.pruner)).__name__ == "NopPruner"
    assert type(make_pruner({"name": "median", "n_warmup_steps": 1})).__name__ == "MedianPruner"


def test_storage_defaults_to_a_journal_in_the_sweep_folder_and_paths_become_absolute():
    assert resolve_storage(None, "multirun/s", "/work") == "/work/multirun/s/optuna.journal"
    assert resolve_storage("sqlite:///opt.db", "x", "/work") == "sqlite:////work/opt.db"
    assert resolve_storage("sqlite:////abs/opt.db", "x", "/work") == "sqlite:////abs/opt.db"
    assert resolve_storage("studies/a.journal", "x", "/work") == "/work/studies/a.journal"
    assert resolve_storage("postgresql://u@h/db", "x", "/work") == "postgresql://u@h/db"


def test_trial_seeds_differ_per_trial_and_repeat_per_seed():
    assert trial_seed(None, 3) is None
    assert trial_seed(7, 3) == trial_seed(7, 3)
    assert len({trial_seed(7, n) for n in range(100)}) == 100


def test_presets_compose_with_the_mnistlab_sweeper():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        mlp = compose("train", overrides=["hparams_search=optuna"], return_hydra_config=True)
        cnn = compose(
            "train", overrides=["hparams_search=cnn_fashion_search"], return_hydra_config=True
        )
    assert mlp.hydra.sweeper._target_.endswith("MnistlabOptunaSweeper")
    assert mlp.hydra.sweeper.study_name == "mlp_search" and mlp.hydra.sweeper.pruner.name == "none"
    assert cnn.data.dataset == "fashion_mnist" and cnn.hydra.sweeper.pruner.name == "median"
    for cfg in (mlp, cnn):
        settings = SearchSettings.from_config(cfg.hydra.sweeper, "multirun/x", "/w")
        assert parse_search_space(settings.params).distributions


# --- whole searches on the fake task -----------------------------------------------------


def test_stopped_search_resumes_to_exactly_n_trials(tmp_path):
    """Trial 3 kills the process (like kill -9); the same command again ends with 6 trials."""
    cmd = _fake(tmp_path, "crash_at_trial=3")
    first = _run(cmd)
    assert first.returncode != 0
    assert _states(_study(tmp_path)) == ["COMPLETE"] * 3 + ["RUNNING"]
    second = _run(cmd)
    assert second.returncode == 0, second.stderr[-3000:]
    study = _study(tmp_path)
    assert len(study.trials) == 6
    assert _states(study) == ["COMPLETE"] * 3 + ["FAIL"] + ["COMPLETE"] * 2
    assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == list(range(6))
    # the same command once more: the study is full, nothing runs
    third = _run(cmd)
    assert third.returncode == 0 and len(_study(tmp_path).trials) == 6


def test_a_resumed_search_proposes_what_an_uninterrupted_one_does(tmp_path):
    """Per-trial sampler seeds: 3 + 3 trials propose the same values as 6 in one go."""
    assert _run(_fake(tmp_path / "a", "hydra.sweeper.n_trials=3")).returncode == 0
    assert _run(_fake(tmp_path / "a", "hydra.sweeper.n_trials=6")).returncode == 0
    assert _run(_fake(tmp_path / "b")).returncode == 0
    resumed, whole = _study(tmp_path / "a"), _study(tmp_path / "b")
    assert [t.params for t in resumed.trials] == [t.params for t in whole.trials]
    assert len({(t.params["x"], t.params["y"]) for t in whole.trials}) == 6


def test_resuming_with_a_different_search_is_refused(tmp_path):
    assert _run(_fake(tmp_path, "hydra.sweeper.n_trials=2")).returncode == 0
    changed = _run(_fake(tmp_path, "epochs=5"))
    assert changed.returncode == 1
    assert "error: study 'fake' was started with a different search (epochs=5)" in changed.stderr
    assert len(_study(tmp_path).trials) == 2


def test_two_processes_on_one_storage_share_the_study(tmp_path):
    cmd = _fake(tmp_path, "sleep=0.3")
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    study = _study(tmp_path)
    trials = study.trials
    # both processes count the trials the other runs; asking is not atomic with counting,
    # so two asks in the same millisecond could add one trial past n_trials
    assert 6 <= len(trials) <= 7
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["mnistlab.worker"] for t in trials}) == 2  # both did trials
    assert len({(t.params["x"], t.params["y"]) for t in trials}) == len(trials)  # distinct
    assert len([p for p in tmp_path.iterdir() if p.name.isdigit()]) == len(trials)


def test_a_pruner_that_always_prunes_marks_trials_pruned_and_the_sweep_reports(tmp_path):
    result = _run(
        _fake(tmp_path, "hydra.sweeper.n_trials=3", "+hydra.sweeper.pruner.lower=2.0")
        + ["hydra.sweeper.pruner.name=threshold"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = _study(tmp_path)
    assert _states(study) == ["PRUNED"] * 3
    assert all(list(t.intermediate_values) == [1] for t in study.trials)  # stopped after epoch 1
    assert json.loads((tmp_path / "0" / "metrics.json").read_text())["status"] == "pruned"
    facts = json.loads((tmp_path / "search.json").read_text())
    assert facts["states"] == {"PRUNED": 3} and facts["best"] == []
    report = (tmp_path / "report.html").read_text()
    assert "0 complete, 3 pruned" in report
    assert "No complete trial yet." in report
    with open(tmp_path / "summary.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["pruned"] * 3


def test_the_reports_best_trial_is_the_storages_best(tmp_path):
    assert _run(_fake(tmp_path)).returncode == 0
    best = _study(tmp_path).best_trial
    facts = json.loads((tmp_path / "search.json").read_text())
    assert [b["trial"] for b in facts["best"]] == [best.number]
    assert facts["best"][0]["values"]["val/acc_best"] == pytest.approx(best.value)
    assert facts["best"][0]["params"] == best.params
    assert facts["best"][0]["command"].startswith(f"python {APP} ")
    assert f"x={best.params['x']:.6g}" in facts["best"][0]["command"]
    report = (tmp_path / "report.html").read_text()
    assert f'class="best-trial" data-trial="{best.number}"' in report
    for stem in ("search_history", "search_importance", "search_slice", "search_contour"):
        assert f'<figure id="{stem}">' in report
    assert report.index("<h2>Search</h2>") < report.index("<h2>Ranking</h2>")
    assert f"optuna-dashboard {tmp_path / 'optuna.journal'}" in report


def test_multi_objective_search_reports_the_pareto_front(tmp_path):
    result = _run(
        _fake(
            tmp_path,
            "hydra.sweeper.direction=[maximize,minimize]",
            "hydra.sweeper.objectives=[val/acc_best,params]",
            "hydra.sweeper.n_trials=5",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = _study(tmp_path)
    assert all(t.values == [t.values[0], 1000 * t.params["y"]] for t in study.trials)
    facts = json.loads((tmp_path / "search.json").read_text())
    assert sorted(b["trial"] for b in facts["best"]) == sorted(t.number for t in study.best_trials)
    assert '<figure id="search_pareto">' in (tmp_path / "report.html").read_text()


def test_a_bad_search_config_ends_with_one_line(tmp_path):
    result = _run(_fake(tmp_path, "hydra.sweeper.pruner.name=sometimes"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: hydra.sweeper.pruner.name=sometimes is not a pruner: use one of none, median, "
        "percentile, successive_halving, hyperband, threshold"
    )


# --- train.py ------------------------------------------------------------------------------


@pytest.mark.slow
@requires_data
def test_train_reports_each_epoch_and_a_pruned_run_says_so(tmp_path):
    """Real (tiny) MLP runs with a pruner that prunes everything after the first epoch."""
    cmd = [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.pruner.name=threshold",
        "+hydra.sweeper.pruner.lower=1.01",  # val/acc never reaches it
        "debug=fast",
        "trainer.max_epochs=3",
        "data.train_size=2000",
        "logger=none",
        "callbacks=none",
        f"hydra.sweep.dir={tmp_path}",
    ]
    result = _run(cmd)
    assert result.returncode == 0, result.stderr[-3000:]
    study = _study(tmp_path, "mlp_search")
    assert _states(study) == ["PRUNED", "PRUNED"]
    for trial in study.trials:
        assert list(trial.intermediate_values) == [1]  # the first epoch, as in history.csv
        (job,) = tmp_path.glob(f"{trial.number}_*")
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["status"] == "pruned" and metrics["pruned_after_epoch"] == 1
        assert metrics["epochs"] == 1  # stopped after the epoch it was pruned at
        assert metrics["val/acc_best"] == pytest.approx(trial.intermediate_values[1])
    assert "2 pruned" in (tmp_path / "report.html").read_text()
