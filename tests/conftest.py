"""Shared fixtures: the real data root, composed configs, and quiet, single-threaded torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from mnistlab.config import register_resolvers
from mnistlab.utils import quiet_warnings

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()
DATA_ROOT = Path(os.environ.get("MNISTLAB_DATA_ROOT", SHARED_DATA)).resolve()
HAS_DATA = (DATA_ROOT / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()

requires_data = pytest.mark.skipif(not HAS_DATA, reason=f"real MNIST not found under {DATA_ROOT}")

register_resolvers()
quiet_warnings()
torch.set_num_threads(1)  # stable timings on a shared 2-core machine


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not HAS_DATA:
        pytest.skip(f"real MNIST not found under {DATA_ROOT}")
    return DATA_ROOT


def compose_config(
    overrides: list[str] | None = None, output_dir: Path | None = None
) -> DictConfig:
    """Compose conf/train.yaml like `python train.py <overrides>` would (hydra keys resolvable)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides or [], return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir or "/tmp/mnistlab-test")
        cfg.paths.run_name = "test"
        cfg.paths.group = "test"
        del cfg.hydra
    return cfg


@pytest.fixture
def make_config(tmp_path):
    def _make(*overrides: str) -> DictConfig:
        return compose_config(list(overrides), output_dir=tmp_path)

    return _make
