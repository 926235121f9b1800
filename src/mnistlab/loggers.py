"""Logger factories that need logic beyond a plain ``_target_``."""

from __future__ import annotations

import netrc
import os
from typing import Any

from lightning.pytorch.loggers import WandbLogger

WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_configured() -> bool:
    """True when this machine has W&B credentials or an explicit mode (never reads the key itself)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_logger(mode: str = "auto", **kwargs: Any) -> WandbLogger:
    """A WandbLogger that stays offline unless W&B is configured (``mode=auto``)."""
    from mnistlab.errors import ConfigError

    if mode not in WANDB_MODES:
        raise ConfigError(
            f"logger.wandb.mode={mode!r} is unknown; choose one of: {', '.join(WANDB_MODES)}"
        )
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_configured() else "offline")
    os.makedirs(kwargs.get("save_dir", "."), exist_ok=True)
    return WandbLogger(offline=mode == "offline", mode=mode, **kwargs)
