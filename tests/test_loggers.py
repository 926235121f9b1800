"""Loggers: W&B stays offline unless configured, never sees a key from us; groups follow the sweep."""

from __future__ import annotations

import pytest

from mnistlab.config import dir_suffix, run_name, sweep_name
from mnistlab.errors import ConfigError
from mnistlab.loggers import wandb_logger


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # no credentials file
    monkeypatch.setenv("HOME", str(tmp_path))


def test_wandb_is_offline_unless_configured(no_wandb_env, tmp_path, monkeypatch) -> None:
    logger = wandb_logger(project="p", save_dir=str(tmp_path), name="run", group="g")
    assert logger._wandb_init["mode"] == "offline" and logger._offline
    assert logger._wandb_init["group"] == "g"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setattr("mnistlab.loggers.wandb_unreachable", lambda: None)  # as if online
    online = wandb_logger(project="p", save_dir=str(tmp_path))
    assert online._wandb_init["mode"] == "online"
    assert "x" * 40 not in repr(online._wandb_init)  # the key is read by wandb itself, never passed


def test_wandb_mode_is_checked(no_wandb_env, tmp_path) -> None:
    with pytest.raises(
        ConfigError, match="logger.wandb.mode='cloud' is unknown; choose one of: auto, online"
    ):
        wandb_logger(mode="cloud", save_dir=str(tmp_path))


def test_run_and_group_names() -> None:
    assert dir_suffix("") == "" and run_name("") == "defaults"
    assert dir_suffix("model=cnn,optimizer=sgd") == "_model=cnn,optimizer=sgd"
    assert "/" not in dir_suffix("model.hidden_sizes=[256,128],data.root=a/b")
    assert len(dir_suffix("x=" + "y" * 500)) <= 121
    assert (
        sweep_name("RunMode.MULTIRUN", "multirun/2026-11-21/10-00-00")
        == "multirun_2026-11-21_10-00-00"
    )
    assert sweep_name("RunMode.RUN", "multirun/x") == "single"
