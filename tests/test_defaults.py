"""The README's "Defaults" tables are what `python train.py` composes: they cannot drift.

Every `key=value` in backticks in that section is checked against the composed config
(`group=option` against the chosen config-group option), and every model row's
parameter count against the network `model=<name>` builds.
"""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import CONF, REPO, compose_config
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from mnistlab.factory import build

SETTING = re.compile(r"`([A-Za-z_][\w.]*)=([^`]+)`")


def defaults_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("### Defaults")
    end = text.index("\n#", start + 1)
    return text[start:end]


def table_rows(section: str, header: str) -> list[list[str]]:
    """Cells of the markdown table whose header row starts with ``| header |``."""
    lines = section.splitlines()
    first = next(
        i
        for i, line in enumerate(lines[:-1])
        if line.startswith(f"| {header} |") and lines[i + 1].startswith("| ---")
    )
    rows = []
    for line in lines[first + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def composed(overrides: list[str]) -> tuple[DictConfig, dict]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    return cfg, choices


def check_settings(text: str, overrides: list[str]) -> int:
    cfg, choices = composed(overrides)
    settings = SETTING.findall(text)
    for key, raw in settings:
        stated = yaml.safe_load(raw)
        if "." not in key and key in choices:
            assert choices[key] == str(stated), (
                f"README says {key}={raw}, conf/ picks {choices[key]}"
            )
            continue
        actual = OmegaConf.select(cfg, key, default="<missing>")
        actual = OmegaConf.to_container(actual) if OmegaConf.is_config(actual) else actual
        assert actual == stated, f"README says {key}={raw}, conf/ gives {actual!r} ({overrides})"
    return len(settings)


def test_training_defaults_table_matches_conf() -> None:
    rows = table_rows(defaults_section(), "setting")
    assert {r[0] for r in rows} >= {"data", "model", "optimizer", "schedule", "objective", "epochs"}
    checked = check_settings("\n".join(r[1] for r in rows), [])
    assert checked >= 12


MODEL_ROWS = table_rows(defaults_section(), "model")


@pytest.mark.parametrize("row", MODEL_ROWS, ids=[r[0].strip("`") for r in MODEL_ROWS])
def test_model_defaults_table_matches_conf(row: list[str], tmp_path) -> None:
    name, settings, params = row[0].strip("`"), row[1], row[2]
    assert (CONF / "model" / f"{name}.yaml").is_file()
    assert check_settings(settings, [f"model={name}"]) >= 1
    _, module = build(compose_config([f"model={name}"], output_dir=tmp_path))
    count = sum(p.numel() for p in module.net.parameters())
    assert f"{count:,}" == params, f"README says {name} has {params} parameters, it has {count:,}"


def test_every_model_has_a_row() -> None:
    assert {r[0].strip("`") for r in MODEL_ROWS} == {
        p.stem for p in (CONF / "model").glob("*.yaml")
    }
