"""Bad input stops before any work with one line naming the value and the fix."""

from __future__ import annotations

import json
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
    with pytest.raises(
        DataError,
        match=r"is the official MNIST/raw/t10k-labels-idx1-ubyte, not MNIST/raw/train-labels-idx1-ubyte",
    ):
        load_split(DATASETS["mnist"], tmp_path, train=True, download=False)


# --- the catalogue of issue 12: each bad input ends in one line, exit code 1 -----------------
NO_NETWORK = {
    k: "http://127.0.0.1:9" for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
}
CATALOGUE = [
    ("optimizer.lr=-1", "optimizer.lr=-1 must be a positive number (e.g. optimizer.lr=0.001)"),
    ("optimizer.lr=inf", "optimizer.lr=inf must be a positive number (e.g. optimizer.lr=0.001)"),
    ("seed=abc", "seed='abc' must be a whole number >= 0 (e.g. seed=42)"),
    (
        "scheduler=plateau scheduler.monitor=val/bogus",
        "scheduler.monitor='val/bogus' is unknown; choose one of: train/acc, ",
    ),
    (
        "+optimizer.lrr=0.1",
        "optimizer.lrr is not an option of torch.optim.AdamW; valid keys: lr, betas, eps, weight_decay, amsgrad",
    ),
    ("cpu_threads=0", "cpu_threads=0 must be a whole number >= 1 or null"),
    ("model.hidden_sizes=[]", "model.hidden_sizes=[] leaves no hidden layer; use model=softmax"),
    ("trainer=gpu", "trainer.accelerator='gpu' but this machine has no usable CUDA GPU; "),
]


@pytest.mark.parametrize(("overrides", "message"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_cli_catalogue_of_bad_inputs(tmp_path, overrides: str, message: str) -> None:
    if overrides == "trainer=gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    result = run_train(*overrides.split(), f"hydra.run.dir={tmp_path}/run", "logger=none")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: " + message), last
    if overrides == "trainer=gpu":
        assert last.endswith("use trainer=cpu or trainer=auto")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics == {"status": "failed", "error": last.removeprefix("error: ")}


def test_cli_unwritable_run_dir_is_one_line(tmp_path) -> None:
    (tmp_path / "file").write_text("")
    result = run_train(f"hydra.run.dir={tmp_path}/file/run", "logger=none")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: hydra.run.dir={tmp_path}/file/run cannot be written (Not a directory); "
        "point hydra.run.dir at a writable folder, e.g. hydra.run.dir=outputs/my_run"
    )


def test_cli_missing_data_root_creates_no_folders(tmp_path) -> None:
    missing = tmp_path / "nonexistent"
    result = run_train(
        f"data.root={missing}", f"hydra.run.dir={tmp_path}/run", "logger=none", env=NO_NETWORK
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: mnist not found in {missing / 'MNIST' / 'raw'}")
    assert not missing.exists()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


def test_config_keys_are_checked_against_the_target(make_config) -> None:
    with pytest.raises(ConfigError, match=r"scheduler.gama is not an option of .*valid keys: "):
        build(make_config("scheduler=step", "+scheduler.gama=0.5"))
    with pytest.raises(ConfigError, match=r"model.widht is not an option of mnistlab.models.MLP"):
        build(make_config("+model.widht=3"))


# --- data integrity: official checksums, cached; unknown IDX files load with a warning ------
@pytest.fixture
def checksum_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mnistlab" / "checksums.json"


@requires_data
def test_another_data_sets_file_of_the_same_size_is_refused(
    tmp_path, data_root, checksum_cache
) -> None:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(data_root / "MNIST" / "raw", raw)
    shutil.copy(
        data_root / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte",
        raw / "train-labels-idx1-ubyte",
    )
    with pytest.raises(DataError) as info:
        load_split(DATASETS["mnist"], tmp_path, train=True, download=False)
    assert str(info.value) == (
        f"{raw / 'train-labels-idx1-ubyte'} is the official "
        "FashionMNIST/raw/train-labels-idx1-ubyte, not MNIST/raw/train-labels-idx1-ubyte "
        "(md5 9018921c3c673c538a1fc5bad174d6f9, expected a25bea736e30d166cdddb491f175f624); "
        "put the official file there (delete it to download again)"
    )


@requires_data
def test_checksums_are_computed_once_and_unknown_idx_files_load_with_a_warning(
    tmp_path, data_root, checksum_cache, caplog, monkeypatch
) -> None:
    from mnistlab.data import datamodule

    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(data_root / "MNIST" / "raw", raw)
    labels = raw / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8] = (data[8] + 1) % 10  # a user's own label file: well formed, not the official one
    labels.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="mnistlab"):
        _, y = load_split(DATASETS["mnist"], tmp_path, train=True, download=False)
    assert len(y) == 60_000
    assert f"{labels} is not the official MNIST file" in caplog.text
    cache = json.loads(checksum_cache.read_text())
    assert len(cache) == 2  # train images and labels
    monkeypatch.setattr(datamodule.hashlib, "md5", None)  # a second look must not hash again
    load_split(DATASETS["mnist"], tmp_path, train=True, download=False)
