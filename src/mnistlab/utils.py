"""Small helpers for the train entry: config printing, JSON output, warning filters."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

PRINT_ORDER = (
    "data",
    "augmentation",
    "model",
    "optimizer",
    "scheduler",
    "module",
    "callbacks",
    "logger",
    "trainer",
)


def quiet_warnings() -> None:
    """Silence known-harmless library warnings (lightning's LeafSpec FutureWarning on torch 2.15, ...)."""
    warnings.filterwarnings(
        "ignore", category=FutureWarning, module=r"(lightning|torch|pytorch_lightning)"
    )
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*`isinstance\(treespec, LeafSpec\)`.*")
    warnings.filterwarnings("ignore", message=r".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")


def print_config_tree(
    cfg: DictConfig, save_to: Path | None = None, order: Sequence[str] = PRINT_ORDER
) -> None:
    """Print the composed config as a tree (rich), and save the same text next to the run."""
    import rich
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("CONFIG", style="bold")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order and k != "paths"]
    for key in keys:
        branch = tree.add(str(key), style="bold cyan")
        value = cfg[key]
        text = (
            OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        )
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    rich.print(tree)
    if save_to is not None:
        with open(save_to, "w") as f:
            rich.print(tree, file=f)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (a reader never sees half a file); NaN becomes null."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump({k: _clean(v) for k, v in data.items()}, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
