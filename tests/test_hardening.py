"""Issue 12: strict JSON after a diverged run, the config in W&B and TensorBoard, console scripts."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, requires_data

from mnistlab.loggers import flat_config


def _refuse(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


@pytest.mark.slow
@requires_data
def test_a_diverged_run_is_not_tested_and_writes_only_strict_json(make_config, data_root, tmp_path):
    from mnistlab.run import train

    metrics = train(
        make_config("optimizer=sgd", "optimizer.lr=1e6", "debug=fast", f"data.root={data_root}")
    )
    assert metrics["status"] == "diverged"
    assert "test/acc" in metrics and metrics["test/acc"] != metrics["test/acc"]  # NaN: not tested
    files = sorted(tmp_path.rglob("*.json"))
    assert tmp_path / "metrics.json" in files
    for path in files:
        json.loads(path.read_text(), parse_constant=_refuse)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == "diverged" and written["test/acc"] is None
    assert not list(tmp_path.rglob("*.ckpt"))  # debug=fast keeps no checkpoint


@pytest.mark.slow
@requires_data
def test_wandb_and_tensorboard_get_the_flat_config(make_config, data_root, tmp_path, monkeypatch):
    import wandb
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mnistlab.run import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MY_API_TOKEN", "hunter2-very-secret")
    cfg = make_config(
        "debug=fast",
        f"data.root={data_root}",
        "logger=many",
        "callbacks=none",
        "optimizer.lr=0.002",
    )
    try:
        metrics = train(cfg)
        config = dict(wandb.run.config)
    finally:
        if wandb.run is not None:
            wandb.finish()
    assert config["optimizer.lr"] == 0.002
    assert config["model.hidden_sizes"] == [256, 128]
    assert "hunter2-very-secret" not in json.dumps(config, default=str)
    hparams = yaml.safe_load((tmp_path / "tensorboard" / "hparams.yaml").read_text())
    assert hparams["optimizer.lr"] == 0.002
    tags, hparams_summaries = set(), set()
    for events in (tmp_path / "tensorboard").glob("events.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
        with contextlib.suppress(KeyError):  # an events file without an HParams summary
            hparams_summaries |= set(acc.PluginTagToContent("hparams"))
    assert metrics["status"] == "ok"
    assert "hparams/test/acc" in tags  # the final test metrics are the HParams tab's metrics
    assert "_hparams_/experiment" in hparams_summaries


def test_no_secret_reaches_the_loggers(monkeypatch) -> None:
    monkeypatch.setenv("SOME_SECRET", "s3cr3t-value")
    flat = flat_config(
        {
            "optimizer": {"lr": 0.1, "betas": [0.9, 0.99]},
            "logger": {"wandb": {"api_key": "abc123", "password": "x", "note": "s3cr3t-value"}},
            "auth_token": "t",
        }
    )
    assert flat == {"optimizer.lr": 0.1, "optimizer.betas": [0.9, 0.99]}


def _console_scripts() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def test_console_scripts_are_declared() -> None:
    assert set(_console_scripts()) == {
        "mnistlab-train",
        "mnistlab-eval",
        "mnistlab-predict",
        "mnistlab-report",
    }


@pytest.mark.parametrize(
    "name", ["mnistlab-train", "mnistlab-eval", "mnistlab-predict", "mnistlab-report"]
)
def test_console_script_help_exits_0(name: str, tmp_path: Path) -> None:
    """Calls the declared entry-point function as the installed script would (from elsewhere)."""
    module, _, function = _console_scripts()[name].partition(":")
    code = (
        f"import sys; sys.argv = [{name!r}, '--help']; "
        f"from {module} import {function} as main; sys.exit(main())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower() or "powered by hydra" in result.stdout.lower()
