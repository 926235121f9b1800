"""Sweeps that survive and scale: unique run folders, resumed runs and sweeps, exit status,
launchers (submitit, Ray, joblib on GPUs), DDP, and W&B without a network."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import REPO, compose_config, requires_data
from test_errors import run_train

from mnistlab.config import dir_suffix, run_name
from mnistlab.data.loader import InMemoryBatches
from mnistlab.errors import ConfigError
from mnistlab.jobs import job_devices
from mnistlab.run import run, train
from mnistlab.rundir import claim_run_dir

#: a few seconds of real training that still writes best.ckpt and last.ckpt
TINY = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "logger=none",
    "callbacks=model_checkpoint",
]


def job_dirs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if (p / ".hydra").is_dir()), key=lambda p: p.name)


def metrics_of(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


# --- folder names ---------------------------------------------------------------------------
def test_long_folder_names_keep_the_seed_and_stay_unique() -> None:
    assert dir_suffix("model=cnn,seed=3") == "_model=cnn,seed=3"
    long = (
        "data=fashion_mnist,model.hidden_sizes=[512,256,128],model=mlp,optimizer.lr=0.003,"
        "optimizer=sgd,regularization=dropout,seed={},trainer.limit_train_batches={},"
        "trainer.max_epochs=3"
    )
    a, b = dir_suffix(long.format(3, 40)), dir_suffix(long.format(3, 50))
    assert a != b and "..." not in a and len(a) <= 121
    assert "seed=3" in a and "hidden_sizes=[512,256,128]" in a and "~" in a
    assert "seed=12345" in dir_suffix("x=" + "y" * 500 + ",seed=12345")
    unsafe = dir_suffix("data.root=a/b,seed=1")
    assert "/" not in unsafe and unsafe != dir_suffix("data.root=a-b,seed=1")
    assert run_name("") == "defaults" and run_name("seed=1") == "seed=1"


def test_run_folders_are_claimed_atomically(tmp_path) -> None:
    base = tmp_path / "12-00-00_model=cnn"
    claimed: list[Path] = []
    threads = [
        threading.Thread(target=lambda: claimed.append(claim_run_dir(base, "_model=cnn")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = sorted(p.name for p in claimed)
    assert len(set(names)) == 8
    assert "12-00-00_model=cnn" in names and "12-00-00-2_model=cnn" in names


@requires_data
@pytest.mark.slow
def test_two_identical_runs_started_at_once_get_two_folders(tmp_path, data_root) -> None:
    env = {**os.environ, "MNISTLAB_CPU_THREADS": "1", "MNISTLAB_DATA_ROOT": str(data_root)}
    command = [sys.executable, str(REPO / "train.py"), *TINY, "trainer.enable_progress_bar=false"]
    procs = [
        subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    runs = sorted((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 2, runs
    assert all(metrics_of(run)["status"] == "ok" for run in runs)


# --- resuming a run ---------------------------------------------------------------------------
class Killed(BaseException):
    """What a kill is to the run: nothing of it is caught or recorded."""


class KillAtEpoch(L.Callback):
    """Ends training as a kill would when epoch ``$KILL_AT_EPOCH`` starts (the last.ckpt of the
    epoch before is on disk). Set from the environment: a resumed run has the same config."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if str(trainer.current_epoch) == os.environ.get("KILL_AT_EPOCH"):
            raise Killed


@requires_data
@pytest.mark.slow
def test_a_resumed_run_ends_where_the_uninterrupted_one_does(
    tmp_path, data_root, caplog, monkeypatch
) -> None:
    # dropout and augmentation draw random numbers every step: the random state and the data
    # order must both continue exactly for the metrics to agree
    overrides = [
        f"data.root={data_root}",
        "data.train_size=2000",
        "trainer.max_epochs=3",
        "trainer.limit_val_batches=2",
        "trainer.enable_progress_bar=false",
        "regularization=dropout",
        "augmentation=affine",
        "logger=csv",
        "callbacks=model_checkpoint",
        "+callbacks.kill._target_=test_sweeps.KillAtEpoch",
    ]
    straight = train(compose_config(overrides, tmp_path / "straight"))
    run_dir = tmp_path / "stopped"
    monkeypatch.setenv("KILL_AT_EPOCH", "2")
    with pytest.raises(Killed):
        train(compose_config(overrides, run_dir))
    monkeypatch.delenv("KILL_AT_EPOCH")
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file() and not (run_dir / "metrics.json").exists()

    with caplog.at_level("INFO", logger="mnistlab"):
        resumed = train(compose_config([*overrides, f"ckpt_path={last}"], run_dir))
    for key in ("test/acc", "test/loss", "val/acc_best", "best_epoch", "epochs"):
        assert round(resumed[key], 4) == round(straight[key], 4), key
    saved = metrics_of(run_dir)
    assert saved["resumed_from"] == str(last) and saved["epochs"] == 3
    assert "resuming from" in caplog.text
    assert (run_dir / "history.csv").read_text().count("\n") == 4  # header + epochs 0, 1, 2
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    csv_log = "csv/metrics.csv"  # Lightning's logger file keeps the epochs before the resume too
    assert (run_dir / csv_log).read_text() == (tmp_path / "straight" / csv_log).read_text()

    other = compose_config([*overrides, "model.hidden_sizes=[64]", f"ckpt_path={last}"], run_dir)
    with pytest.raises(ConfigError) as info:
        train(other)
    message = str(info.value)
    assert "\n" not in message
    assert "was saved by a run of another config (model.hidden_sizes=[256, 128] there" in message
    assert "drop ckpt_path to start a new run" in message


def test_testing_an_earlier_checkpoint_keeps_the_whole_history(tmp_path) -> None:
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    from mnistlab.callbacks.history import EpochHistory

    history = EpochHistory(tmp_path)
    history.rows = [{"epoch": e, "val/acc": 0.5} for e in range(3)]
    best = {"rows": history.rows[:2]}  # best.ckpt was saved after epoch 1
    history._trainer = SimpleNamespace(state=SimpleNamespace(fn=TrainerFn.TESTING))
    history.load_state_dict(best)  # trainer.test(ckpt_path=best.ckpt) restores callbacks too
    assert len(history.rows) == 3
    history._trainer = SimpleNamespace(state=SimpleNamespace(fn=TrainerFn.FITTING))
    history.load_state_dict(best)  # trainer.fit(ckpt_path=...) resumes from it
    assert len(history.rows) == 2


def test_ckpt_path_is_a_config_key(make_config) -> None:
    assert make_config().ckpt_path is None
    assert make_config("ckpt_path=/x/last.ckpt").ckpt_path == "/x/last.ckpt"


# --- resuming a sweep, exit status ------------------------------------------------------------
@requires_data
@pytest.mark.slow
def test_a_rerun_sweep_skips_finished_jobs_and_continues_the_others(tmp_path, data_root) -> None:
    sweep = tmp_path / "sweep"
    command = ["-m", "seed=1,2,3", f"data.root={data_root}", *TINY, f"hydra.sweep.dir={sweep}"]
    first = run_train(*command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    done, stopped, failed = job_dirs(sweep)
    (stopped / "metrics.json").unlink()  # killed after its last epoch's checkpoint
    (failed / "metrics.json").write_text('{"status": "failed", "error": "out of memory"}')
    shutil.rmtree(failed / "checkpoints")  # failed before its first checkpoint
    results = [p for p in done.rglob("*") if p.is_file() and p.suffix in (".json", ".csv", ".ckpt")]
    untouched = {p: p.stat().st_mtime_ns for p in results}
    report = (sweep / "report.md").stat().st_mtime_ns

    second = run_train(*command, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert len(results) > 3 and {p: p.stat().st_mtime_ns for p in results} == untouched
    assert f"job {done.name} finished before (status ok" in second.stdout
    assert "finished before (status ok" in (done / "train.log").read_text()
    assert (
        "3 jobs: 1 finished before (skipped), 1 resumed from their last.ckpt, 0 failed"
        in second.stdout
    )
    resumed, rerun = metrics_of(stopped), metrics_of(failed)
    assert resumed["resumed_from"] == str(stopped / "checkpoints" / "last.ckpt")
    assert "resumed_from" not in rerun  # trained again from the start
    assert all(m["status"] == "ok" and m["epochs"] == 2 for m in (resumed, rerun))
    assert not list(sweep.rglob("*-v1.ckpt"))
    assert (sweep / "report.md").stat().st_mtime_ns > report

    other = run_train(*command, "model.hidden_sizes=[64]", cwd=tmp_path)
    assert other.returncode == 1
    assert (
        other.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"error: hydra.sweep.dir={sweep} holds a sweep of another config (model.hidden_sizes="
        )
    )


def test_a_sweep_with_failed_jobs_exits_nonzero_after_its_report(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m", "optimizer.lr=-1,0", "logger=none", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert result.returncode == 1
    names = ", ".join(p.name for p in job_dirs(sweep))
    assert result.stderr.strip().splitlines()[-1] == f"2 of 2 jobs failed: {names}"
    assert (sweep / "summary.csv").is_file() and (sweep / "report.html").is_file()


@requires_data
@pytest.mark.slow
def test_a_diverged_single_run_says_so_and_ends_normally(tmp_path, data_root, capsys) -> None:
    cfg = compose_config(
        [f"data.root={data_root}", "optimizer=sgd", "optimizer.lr=1e6", *TINY], tmp_path
    )
    run(cfg)  # returns (exit status 0): a diverged run is a result
    assert "Training diverged (train/loss=" in capsys.readouterr().out
    assert metrics_of(tmp_path)["status"] == "diverged"


# --- launchers --------------------------------------------------------------------------------
def _submitit_tasks(sweep: Path) -> list[int]:
    """Process ids of the submitit jobs of ``sweep`` (``python -m submitit.core._submit ...``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if "submitit.core._submit" in cmdline and str(sweep) in cmdline:
            pids.append(int(proc.name))
    return pids


@requires_data
@pytest.mark.slow
def test_submitit_local_sweep_survives_preemption(tmp_path, data_root) -> None:
    sweep = tmp_path / "sweep"
    overrides = [
        "-m",
        "launcher=submitit_local",
        "seed=1,2",
        f"data.root={data_root}",
        *TINY,
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=20",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "MNISTLAB_CPU_THREADS": "1"}
    command = [
        sys.executable,
        str(REPO / "train.py"),
        *overrides,
        "trainer.enable_progress_bar=false",
    ]
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    while not list(sweep.glob("*/checkpoints/last.ckpt")) and time.time() < deadline:
        time.sleep(0.05)
    for pid in _submitit_tasks(sweep):  # SLURM's warning before a preemption: USR2
        os.kill(pid, signal.SIGUSR2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    jobs = job_dirs(sweep)
    assert len(jobs) == 2 and (sweep / ".submitit").is_dir()
    metrics = [metrics_of(job) for job in jobs]
    assert all(m["status"] == "ok" and m["epochs"] == 3 for m in metrics)
    assert any("resumed_from" in m for m in metrics)  # requeued, then continued from last.ckpt


@requires_data
@pytest.mark.slow
def test_ray_sweep_on_a_local_two_cpu_ray(tmp_path, data_root) -> None:
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        "launcher=ray",
        "hydra.launcher.init.num_cpus=2",
        "seed=1,2",
        f"data.root={data_root}",
        *TINY,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_dirs(sweep)
    assert [metrics_of(job)["seed"] for job in jobs] == [1, 2]
    assert all(metrics_of(job)["status"] == "ok" for job in jobs)
    assert "Ray: 2 jobs, 1 CPU and 0.0 GPU each" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [(4, [[0], [1], [2], [3], [0], [1], [2], [3]]), (3, [[0], [1], [2], [0], [1], [2], [0], [1]])],
)
def test_joblib_jobs_spread_over_gpus(make_config, gpus: int, expected: list) -> None:
    cfg = make_config("spread_gpus=true")
    devices = [job_devices(cfg, job_num=i, gpu_count=gpus)["devices"] for i in range(8)]
    assert devices == expected
    assert job_devices(cfg, job_num=1, gpu_count=1) == {}  # one GPU: Lightning's choice is it
    assert job_devices(cfg, job_num=1, gpu_count=0) == {}  # CPU only
    assert job_devices(make_config("spread_gpus=true", "trainer=cpu"), job_num=1, gpu_count=4) == {}
    assert job_devices(make_config("spread_gpus=true", "trainer.devices=2"), 1, 4) == {}
    assert job_devices(make_config(), job_num=1, gpu_count=4) == {}  # off by default
    assert job_devices(cfg, job_num=None, gpu_count=4) == {}  # not a sweep job


def test_joblib_launcher_turns_gpu_spreading_on(tmp_path) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["launcher=joblib"], return_hydra_config=True)
    assert cfg.spread_gpus is True and cfg.hydra.launcher.n_jobs == 2


# --- DDP --------------------------------------------------------------------------------------
def test_eval_shards_hold_every_image_exactly_once() -> None:
    images, labels = torch.zeros(10, 1, 2, 2), torch.arange(10)
    shards = [InMemoryBatches(images, labels, 3, world_size=3, rank=r, pad=False) for r in range(3)]
    seen = torch.cat([label for shard in shards for _, label in shard])
    assert sorted(seen.tolist()) == list(range(10))
    padded = [InMemoryBatches(images, labels, 3, world_size=3, rank=r) for r in range(3)]
    assert {len(p) for p in padded} == {2} and sum(len(s.indices(0)) for s in padded) == 12


@requires_data
@pytest.mark.slow
def test_ddp_on_two_cpu_processes_tests_each_image_once(tmp_path, data_root) -> None:
    result = run_train(
        "trainer=ddp",
        "trainer.devices=2",
        f"data.root={data_root}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=10",
        "logger=csv",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1, runs  # rank 1 worked in rank 0's folder
    run = runs[0]
    assert list(tmp_path.rglob("metrics.json")) == [run / "metrics.json"]
    metrics = metrics_of(run)
    assert metrics["status"] == "ok" and metrics["test/n_samples"] == 10_000
    assert json.loads((run / "artifacts" / "summary.json").read_text())["test_images"] == 10_000
    assert (run / "train_rank1.log").is_file() and len(list(run.rglob("*.ckpt"))) == 2


# --- W&B ----------------------------------------------------------------------------------------
@pytest.fixture
def wandb_without_network(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on port 9


def test_wandb_without_network_falls_back_offline_at_once(
    wandb_without_network, tmp_path, caplog
) -> None:
    from mnistlab.loggers import wandb_logger

    start = time.perf_counter()
    logger = wandb_logger(project="p", save_dir=str(tmp_path))
    assert time.perf_counter() - start < 5
    assert logger._wandb_init["mode"] == "offline"
    warnings = [r.getMessage() for r in caplog.records if "W&B is not reachable" in r.getMessage()]
    assert len(warnings) == 1 and "127.0.0.1:9" in warnings[0] and "logging offline" in warnings[0]


@requires_data
@pytest.mark.slow
def test_a_wandb_run_without_network_finishes_with_its_metrics(
    wandb_without_network, tmp_path, data_root
) -> None:
    start = time.perf_counter()
    cfg = compose_config([f"data.root={data_root}", *TINY, "logger=wandb"], tmp_path)
    metrics = train(cfg)
    assert metrics["status"] == "ok" and (tmp_path / "metrics.json").is_file()
    assert (tmp_path / "wandb").is_dir()
    assert time.perf_counter() - start < 60
