"""The lab notebook from real (tiny) study sweeps, and `make studies`' command lines."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CONF, REPO, compose_config, requires_data
from omegaconf import OmegaConf
from test_errors import run_train

from mnistlab.report.__main__ import main as report_main

TINY = [
    "seed=1",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "data.train_size=2000",
    "logger=none",
]
#: two studies, each with only the callbacks its answer reads (fewer test-set pictures: faster)
SWEEPS = {
    "dead_neurons": "callbacks=[model_checkpoint,activation_stats]",
    "loss": "callbacks=[model_checkpoint]",
}


def _question(study: str) -> str:
    cfg = compose_config([f"experiment={study}"])
    return " ".join(OmegaConf.to_container(cfg)["report"]["question"].split())


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    """``<root>/<study>``: two real sweeps of 2 jobs each (1 epoch of 5 batches), as `make studies`
    leaves them."""
    from conftest import DATA_ROOT, HAS_DATA

    if not HAS_DATA:
        pytest.skip(f"real MNIST not found under {DATA_ROOT}")
    root = tmp_path_factory.mktemp("studies")
    for study, callbacks in SWEEPS.items():
        result = run_train(
            "-m", f"experiment={study}", *TINY, callbacks, f"data.root={DATA_ROOT}",
            f"hydra.sweep.dir={root / study}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.slow
@requires_data
def test_the_notebook_embeds_every_image_and_answers_every_study(studies, capsys):
    assert report_main(["--notebook", str(studies)]) == 0
    assert f"notebook_html: {studies / 'notebook.html'}" in capsys.readouterr().out
    page = (studies / "notebook.html").read_text()
    images = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(images) == page.count("<img") == len(SWEEPS)  # one key figure per study
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.count('src="') == len(images)  # nothing else is loaded: no file, script or font
    assert "<script" not in page and "<link" not in page and "url(" not in page
    markdown = (studies / "notebook.md").read_text()
    for study in SWEEPS:
        section = page.split(f'<section id="study-{study.replace("_", "-")}">')[1]
        section = section.split("</section>")[0]
        assert _question(study) in section and _question(study) in markdown
        answers = re.findall(r"<li>([^<]+)</li>", section.split('<ul class="answer">')[1])
        assert answers and re.search(r"\d+\.\d+%", answers[0])  # the answer comes with numbers
        assert (
            f'href="{study}/report.html"' in section and (studies / study / "report.html").is_file()
        )
        assert "2 jobs · data mnist · 1 epoch · 1 seed · limit_train_batches=5" in section
        for image in re.findall(rf"\]\(({study}/report_files/[^)]+\.png)\)", markdown):
            assert (studies / image).is_file()
    # the contents list links every section, in the README's order of the studies
    contents = re.findall(r'<li><a href="#study-([a-z-]+)">', page)
    assert contents == ["loss", "dead-neurons"]
    assert "Shortened run: 2 of 2 studies" in page


@pytest.mark.slow
@requires_data
def test_a_short_dead_neurons_sweep_reports_the_dead_units_table(studies):
    report = (studies / "dead_neurons" / "report.md").read_text()
    study = report.split("## Study: dead_neurons")[1].split("## Best configuration")[0]
    header = "| group | layer | kind | measure | init % | best % | end % | best / end epoch |"
    assert header in study
    rows = [line for line in study.splitlines() if line.startswith("| model.activation=")]
    groups = {row.split(" | ")[0].strip("| ") for row in rows}
    assert groups == {"model.activation=relu", "model.activation=tanh"}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        group, layer, kind, measure, *percents, epochs = cells
        assert (kind, measure) == (("relu", "dead") if "relu" in group else ("tanh", "saturated"))
        assert epochs == "1 / 1"  # one epoch: the best checkpoint is the end of training
        for cell in percents:  # one seed: a number, no ±
            assert 0.0 <= float(cell) <= 100.0, row
    assert (
        "of hidden units dead in the tested model (best checkpoint = end of training, epoch 1)"
        in study
    )


def test_the_report_command_wants_a_sweep_or_a_notebook_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        report_main([])
    assert report_main(["--notebook", str(tmp_path)]) == 1
    assert "no study sweeps under" in capsys.readouterr().err


def test_data_overrides_a_study_that_fixes_its_data_set():
    assert compose_config(["experiment=mlp_vs_cnn"]).data.dataset == "fashion_mnist"
    assert compose_config(["experiment=mlp_vs_cnn", "data=mnist"]).data.dataset == "mnist"
    assert compose_config(["experiment=dead_neurons", "data=fashion_mnist"]).data.dataset == (
        "fashion_mnist"
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_studies_passes_the_shortening_knobs_and_data(tmp_path):
    """`make studies` with PYTHON=echo prints the command of each study instead of running it."""

    def commands(*args: str) -> list[str]:
        result = subprocess.run(
            ["make", "-s", "studies", "PYTHON=echo", f"STUDIES_DIR={tmp_path}", *args],
            cwd=REPO, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return [line for line in result.stdout.splitlines() if line.startswith(("train.py", "-m"))]

    knobs = ["STUDIES=mlp_vs_cnn transfer", "DATA=fashion_mnist", "EPOCHS=1", "SEEDS=2", "LIMIT=5"]
    mlp_vs_cnn, transfer, notebook = commands(*knobs)
    short = "trainer.max_epochs=1 seed=1,2 trainer.limit_train_batches=5"
    assert mlp_vs_cnn == (
        f"train.py -m experiment=mlp_vs_cnn data=fashion_mnist {short} "
        f"hydra.sweep.dir={tmp_path}/mlp_vs_cnn"
    )
    # transfer sweeps data=mnist,fashion_mnist itself: DATA would collapse its grid
    assert (
        transfer == f"train.py -m experiment=transfer {short} hydra.sweep.dir={tmp_path}/transfer"
    )
    assert notebook == f"-m mnistlab.report --notebook {tmp_path}"
    # by default every study of conf/experiment, not the best_* / speedrun_* recipes
    studies = [c.split()[2].removeprefix("experiment=") for c in commands()[:-1]]
    every = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert studies == [s for s in every if not s.startswith(("best_", "speedrun_"))]
    assert len(studies) == 18


def test_the_same_study_twice_gets_two_sections_named_by_folder(tmp_path):
    """``<dir>/mnist/lr`` and ``<dir>/fashion/lr``: distinct anchors, titles with the folder."""
    from mnistlab.artifacts.figures import grid_figure, save_figure

    for data in ("mnist", "fashion"):
        sweep = tmp_path / data / "lr"
        fig, _ = grid_figure(1)
        save_figure(fig, sweep / "report_files" / "study_vs_optimizer_lr.png")
        (sweep / "multirun.yaml").write_text("{}\n")
        (sweep / "report.html").write_text("<html></html>\n")
        (sweep / "study.json").write_text(json.dumps({
            "study": "lr", "question": "How sensitive?", "answer": [f"{data}: best at 0.003."],
            "figures": [{"stem": "s", "caption": "c", "file": "report_files/study_vs_optimizer_lr.png"}],
            "jobs": 7, "finished": 6, "data": [data], "epochs": 10, "seeds": 3, "limits": {},
        }))  # fmt: skip
    assert report_main(["--notebook", str(tmp_path)]) == 0
    page = (tmp_path / "notebook.html").read_text()
    assert re.findall(r'<section id="([^"]+)"><h2>([^<]+)</h2>', page) == [
        ("study-lr--fashion-lr-", "lr (fashion/lr)"),
        ("study-lr--mnist-lr-", "lr (mnist/lr)"),
    ]
    assert "7 jobs (1 failed) · data mnist · 10 epochs · 3 seeds" in page
    assert "Shortened run" not in page
    assert '<a href="mnist/lr/report.html">' in page
