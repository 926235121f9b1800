"""Bad input stops before any work with one line naming the value and the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, requires_data

from mnistlab.data.datamodule import DATASETS, load_split
from mnistlab.errors import ConfigError, DataError
from mnistlab.factory import build


def run_train(
    *overrides: str, cwd: Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
    environment = {**os.environ, "MNISTLAB_CPU_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *overrides, "trainer.enable_progress_bar=false"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=0", "optimizer.lr=0 must be a positive number"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 must be a positive number"),
        ("data.batch_size=0", "data.batch_size=0 must be a whole number >= 1"),
        ("data.val_size=60000", "data.val_size=60000 gives 60000 validation images out of 60000"),
        ("data.val_size=0.6", "it must be at least 1 and smaller than the remaining train set"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 must be a whole number >= 1"),
        (
            "model.activation=swish",
            "model.activation='swish' is unknown; choose one of: relu, tanh",
        ),
        ("model.init=he", "model.init='he' is unknown; choose one of: default, zeros"),
        ("module.loss=hinge", "module.loss='hinge' is unknown; choose one of: ce, mse"),
    ],
)
def test_bad_values_are_named(make_config, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(make_config(override))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_augmentation_that_does_not_fit_the_data(make_config) -> None:
    with pytest.raises(ConfigError, match=r"RandomHorizontalFlip does not fit data=mnist"):
        build(make_config("data=mnist", "augmentation=flip"))
    build(make_config("data=fashion_mnist", "augmentation=fashion"))


def test_cli_bad_value_is_one_line_and_exit_code_1(tmp_path) -> None:
    result = run_train(
        "optimizer.lr=-1",
        f"hydra.run.dir={tmp_path}/run",
        "data.download=false",
        f"data.root={tmp_path}",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: optimizer.lr=-1 must be a positive number (e.g. optimizer.lr=0.001)"
    )
    assert "Traceback" not in result.stderr


def test_cli_unknown_model_lists_the_choices(tmp_path) -> None:
    result = run_train("model=transformer", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 1
    assert "Could not find 'model/transformer'" in result.stderr
    assert "Available options in 'model':" in result.stderr and "resnet" in result.stderr
    assert "Traceback" not in result.stderr


def test_offline_without_data_says_how_to_point_at_files(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # No internet here, and a proxy to nowhere makes sure of it elsewhere too.
    result = run_train(
        f"data.root={empty}",
        f"hydra.run.dir={tmp_path}/run",
        env={
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
        },
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: mnist not found in {empty / 'MNIST' / 'raw'} and the download failed"
    )
    assert "data.root=" in last and "MNISTLAB_DATA_ROOT" in last
    assert "Traceback" not in result.stderr


def test_missing_files_without_download(tmp_path) -> None:
    with pytest.raises(
        DataError, match=r"files not found in .* and data.download=false; point data.root"
    ):
        load_split(DATASETS["fashion_mnist"], tmp_path, train=True, download=False)


@requires_data
def test_truncated_file_is_a_clear_error(tmp_path, data_root) -> None:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(data_root / "MNIST" / "raw", raw)
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1_000_000])
    with pytest.raises(DataError, match=r"mnist files in .* are corrupt or truncated"):
        load_split(DATASETS["mnist"], tmp_path, train=True, download=False)


@requires_data
def test_wrong_sized_file_is_a_clear_error(tmp_path, data_root) -> None:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(data_root / "MNIST" / "raw", raw)
    # Swap in the test labels for the train labels: valid files, wrong split.
    shutil.copy(raw / "t10k-labels-idx1-ubyte", raw / "train-labels-idx1-ubyte")
    with pytest.raises(DataError, match=r"not the official ones or are damaged"):
        load_split(DATASETS["mnist"], tmp_path, train=True, download=False)
