"""The artifact registry is the one list: configs, eval.py, the README and the tests agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONF, REPO, compose_config
from hydra.utils import get_class
from PIL import Image
from sklearn.metrics import average_precision_score

from mnistlab.artifacts import markdown_table, names, registry
from mnistlab.artifacts.base import Artifact
from mnistlab.artifacts.evaluation import Evaluation, Predictions, TestSetArtifact
from mnistlab.artifacts.pr_curve import PrecisionRecallArtifact, average_precision
from mnistlab.eval import default_artifacts

CALLBACKS = CONF / "callbacks"


def _defaults(config: str) -> list[str]:
    entries = yaml.safe_load((CALLBACKS / f"{config}.yaml").read_text())["defaults"]
    return [e for e in entries if isinstance(e, str) and e != "_self_"]


def test_every_registered_artifact_has_its_own_yaml_pointing_at_it() -> None:
    for name, cls in registry().items():
        conf = yaml.safe_load((CALLBACKS / f"{name}.yaml").read_text())
        assert list(conf) == [name], f"conf/callbacks/{name}.yaml must hold the one key {name}"
        assert get_class(conf[name]["_target_"]) is cls
        assert cls.caption and cls.files, name


def test_every_artifact_yaml_is_registered() -> None:
    """A yaml whose target is an Artifact but which the registry does not know is a stray."""
    for path in CALLBACKS.glob("*.yaml"):
        conf = yaml.safe_load(path.read_text()) or {}  # none.yaml is empty
        for key, entry in conf.items():
            if not isinstance(entry, dict) or "_target_" not in entry:
                continue
            cls = get_class(entry["_target_"])
            if isinstance(cls, type) and issubclass(cls, Artifact):
                assert registry().get(key) is cls, f"{path.name}: {key} is not registered"


def test_default_config_switches_on_exactly_the_test_and_training_artifacts() -> None:
    on = set(_defaults("default")) & set(registry())
    assert on == set(names("test")) | set(names("training"))
    assert set(_defaults("diagnostics")) - {"default"} == set(names("diagnostic"))
    cfg = compose_config()
    assert set(names("test")) | set(names("training")) <= set(cfg.callbacks)
    assert not set(names("diagnostic")) & set(cfg.callbacks)


def test_eval_redraws_every_test_and_training_artifact(tmp_path: Path) -> None:
    callbacks = default_artifacts(tmp_path / "artifacts", tmp_path / "history.csv")
    collector = next(cb for cb in callbacks if isinstance(cb, Evaluation))
    drawn = {cb.name for cb in callbacks if isinstance(cb, Artifact)} | {
        w.name for w in collector.writers
    }
    assert drawn == set(names("test")) | set(names("training"))


def test_readme_lists_every_artifact_as_the_registry_prints_it() -> None:
    readme = (REPO / "README.md").read_text()
    assert markdown_table() in readme, "README is stale: paste `python -m mnistlab.artifacts`"


def test_kinds_and_folders() -> None:
    for name, cls in registry().items():
        assert (cls.subdir == "diagnostics") == (cls.kind == "diagnostic"), name
        assert issubclass(cls, TestSetArtifact) == (cls.kind == "test"), name


def test_average_precision_matches_scikit_learn_and_skips_absent_classes() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (400,), generator=generator)
    logits = torch.randn(400, 4, generator=generator) + 1.5 * torch.nn.functional.one_hot(labels, 4)
    probs = logits.softmax(1)
    ap = average_precision(probs, labels, ["a", "b", "c", "absent"])
    for i, name in enumerate("abc"):
        expected = average_precision_score((labels == i).numpy(), probs[:, i].numpy())
        assert ap["per_class"][name] == pytest.approx(expected, abs=1e-6)
    assert ap["per_class"]["absent"] != ap["per_class"]["absent"]  # NaN
    assert ap["macro"] == pytest.approx(sum(ap["per_class"][n] for n in "abc") / 3, abs=1e-6)


def test_pr_curve_artifact_writes_strict_json_and_a_picture(tmp_path: Path) -> None:
    import json

    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(10).repeat(20)
    logits = torch.randn(200, 10, generator=generator) + 2 * torch.nn.functional.one_hot(labels)
    result = Predictions(logits, labels, torch.arange(200), [str(i) for i in range(10)])
    artifact = PrecisionRecallArtifact(tmp_path)
    numbers = artifact.write(result, None)
    saved = json.loads((tmp_path / "pr_auc.json").read_text())
    assert numbers == {"test/ap_macro": pytest.approx(saved["macro"])}
    assert 0.5 < saved["macro"] <= 1.0 and set(saved["per_class"]) == set(result.class_names)
    with Image.open(tmp_path / "pr_curve.png") as img:
        assert img.size[0] >= 600 and img.size[1] >= 400
    assert artifact.figures == {"artifacts/pr_curve": tmp_path / "pr_curve.png"}
