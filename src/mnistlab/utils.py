"""Console helpers for the entry points: the config tree, and filters for harmless warnings."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

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
