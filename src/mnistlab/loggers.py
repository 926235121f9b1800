"""Logger factories that need logic beyond a plain ``_target_``."""

from __future__ import annotations

import logging
import netrc
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

WANDB_MODES = ("auto", "online", "offline", "disabled")
#: seconds the W&B server may take to accept a connection before a run logs offline instead
WANDB_PROBE_TIMEOUT_S = 3.0

log = logging.getLogger("mnistlab")


def wandb_base_url() -> str:
    """The W&B server wandb would talk to: ``$WANDB_BASE_URL``, the host of ``wandb login
    --host``, or wandb's default."""
    try:
        import wandb

        settings = wandb.Settings()
        settings.update_from_system_settings()
        settings.update_from_env_vars(dict(os.environ))
        return str(settings.base_url)
    except Exception:  # another wandb version: the environment, then the classic default
        return os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def wandb_unreachable(timeout: float = WANDB_PROBE_TIMEOUT_S) -> str | None:
    """Why the W&B server (:func:`wandb_base_url`) cannot be reached, or None when it can.

    One TCP connection, name lookup included, bounded by ``timeout`` seconds: wandb's own
    start waits minutes without a network, then fails the run.
    """
    url = urlparse(wandb_base_url())
    host = url.hostname or "api.wandb.ai"
    port = url.port or (80 if url.scheme == "http" else 443)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as err:
            outcome.append(err.strerror or str(err) or type(err).__name__)

    probe = threading.Thread(target=connect, daemon=True)  # a hung name lookup is left behind
    probe.start()
    probe.join(timeout)
    if not outcome:
        return f"{host}:{port} did not answer within {timeout:g} s"
    return f"{host}:{port}: {outcome[0]}" if outcome[0] else None


def wandb_configured() -> bool:
    """True when this machine has W&B credentials or an explicit mode (never reads the key itself)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_logger(
    mode: str = "auto", watch: str | bool = "off", watch_log_freq: int = 100, **kwargs: Any
) -> WandbLogger:
    """A WandbLogger that stays offline unless W&B is configured (``mode=auto``).

    ``watch``: off, gradients, parameters or all: W&B's own histograms of the network's
    gradients and/or weights every ``watch_log_freq`` steps (see :func:`watch_model`).
    """
    from mnistlab.errors import ConfigError, one_of, positive_int

    if watch is False:  # YAML 1.1 reads a bare `off` as false
        watch = "off"
    one_of(watch, "logger.wandb.watch", WATCH_MODES)
    positive_int(watch_log_freq, "logger.wandb.watch_log_freq")

    if mode not in WANDB_MODES:
        raise ConfigError(
            f"logger.wandb.mode={mode!r} is unknown; choose one of: {', '.join(WANDB_MODES)}"
        )
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_configured() else "offline")
    if mode == "online" and (reason := wandb_unreachable()):
        log.warning(
            "W&B is not reachable (%s): logging offline to %s/wandb; upload later with "
            "`wandb sync`",
            reason,
            kwargs.get("save_dir", "."),
        )
        mode = "offline"
    os.makedirs(kwargs.get("save_dir", "."), exist_ok=True)
    logger = WandbLogger(offline=mode == "offline", mode=mode, **kwargs)
    logger.mnistlab_watch = watch
    logger.mnistlab_watch_log_freq = watch_log_freq
    return logger


WATCH_MODES = ("off", "gradients", "parameters", "all")
#: a config key or environment variable whose name holds one of these never reaches a logger
SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential")


def _secret_name(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


def flat_config(cfg: Any) -> dict[str, Any]:
    """The resolved run config as ``{"optimizer.lr": 0.001, "model.hidden_sizes": [256, 128], ...}``.

    What W&B's run config and TensorBoard's hparams show, so runs of a sweep can be compared
    by any hyperparameter. Keys naming a secret (key, token, secret, password) and values equal
    to a secret-named environment variable are left out.
    """
    from omegaconf import DictConfig, OmegaConf

    tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    secrets = {
        value for name, value in os.environ.items() if _secret_name(name) and len(value) >= 4
    }
    flat: dict[str, Any] = {}

    def visit(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not _secret_name(str(key)):
                    visit(value, f"{prefix}.{key}" if prefix else str(key))
            return
        if isinstance(node, str) and node in secrets:
            return
        if isinstance(node, (list, tuple)) and any(
            isinstance(v, str) and v in secrets for v in node
        ):
            return
        flat[prefix] = list(node) if isinstance(node, tuple) else node

    visit(tree, "")
    return flat


def continue_csv_logs(loggers: list[Any]) -> None:
    """A resumed run appends to its ``csv/metrics.csv``. Lightning's CSV writer deletes the
    file it finds (a new experiment in an old folder) and would then write the new session's
    rows only: the rows of the epochs before the resume are put back, with their columns."""
    import csv

    from lightning.fabric.loggers.csv_logs import _ExperimentWriter
    from lightning.pytorch.loggers import CSVLogger

    for logger in loggers:
        if not isinstance(logger, CSVLogger) or logger._experiment is not None:
            continue
        path = Path(logger.log_dir) / _ExperimentWriter.NAME_METRICS_FILE
        earlier = path.read_text() if path.is_file() else ""
        writer = logger.experiment  # created now: removes the file
        if earlier and isinstance(writer, _ExperimentWriter):
            path.write_text(earlier)
            writer.metrics_keys = list(next(csv.reader(earlier.splitlines()), []))


def log_config(loggers: list[Any], params: dict[str, Any]) -> None:
    """Give every logger but TensorBoard the flat config now (TensorBoard gets it at the end,
    with the final metrics: its HParams tab needs both in one summary)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in loggers:
        if not isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params)


def log_final(loggers: list[Any], params: dict[str, Any], metrics: dict[str, Any]) -> None:
    """TensorBoard: the flat config with the run's final metrics as hparam metrics (HParams tab);
    W&B: the final metrics in the run summary (parallel coordinates)."""
    import math

    from lightning.pytorch.core.saving import save_hparams_to_yaml
    from lightning.pytorch.loggers import TensorBoardLogger

    final = {
        k: float(v)
        for k, v in metrics.items()
        if k != "seed"  # a hyperparameter, not a result
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
    }
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics={f"hparams/{k}": v for k, v in final.items()})
            # Lightning wrote hparams.yaml when fit ended and never rewrites it: write it now
            save_hparams_to_yaml(Path(logger.log_dir) / "hparams.yaml", logger.hparams)
        elif isinstance(logger, WandbLogger):
            logger.experiment.summary.update(final)


def watch_model(loggers: list[Any], model: Any) -> None:
    """W&B's own gradient/weight histograms when ``logger.wandb.watch`` is not ``off``."""
    for logger in loggers:
        mode = getattr(logger, "mnistlab_watch", "off")
        if isinstance(logger, WandbLogger) and mode != "off":
            logger.watch(model, log=mode, log_freq=logger.mnistlab_watch_log_freq)
