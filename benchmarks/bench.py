"""Throughput benchmark: the standard torchvision pipeline vs mnistlab vs a plain torch loop.

``make bench`` or ``python -m benchmarks.bench [--quick] [--out FILE.json] [--device cpu|cuda]``

Per model it measures training images/s and test-set inference images/s of

* ``standard``: a torchvision dataset with per-sample ``ToTensor`` + ``Normalize``, a
  ``DataLoader`` (batch 128, ``num_workers`` 0 and 2) and a plain training loop, as the
  tutorials write it;
* ``mnistlab``: the lab's own path, a realistic default run: ``mnistlab.run.build`` on the
  composed config, the configured callbacks and loggers plus ``EpochHistory``, ``trainer.fit``;
* ``plain``: a bare torch loop over the same in-memory uint8 tensors (the overhead floor).

At ``--overhead-batch`` (512) it also times ``bare``: the same net and optimizer in the
simplest LightningModule (a loss-only ``training_step``, no callbacks, logger, metrics or
checkpointing), which is the cost of Lightning's training loop itself. mnistlab's overhead
over ``plain`` minus this floor is what the lab's own features (metrics, callbacks, logging)
add.

Timing rules (so the three are comparable):

* one repeat is one full training epoch (``--quick``: a fixed number of batches); the
  pipelines run round-robin within each repeat, so a change of load on a shared machine hits
  all of them, and the median over repeats is reported; the short batch-512 epochs run
  ``--overhead-rounds`` (3) times per repeat, so their medians are over 9 epochs;
* mnistlab's training time runs from ``on_train_epoch_start`` to ``on_train_end``, minus the
  validation loop (checkpointing, logging, the progress bar and the epoch-end metric
  computation are counted; the test-time figures drawn after fitting are not); its
  evaluation time runs from ``on_test_start`` to ``on_test_end`` of a ``trainer.test`` with
  the run's trainer config and loggers but without the artifact callbacks (reports, not
  inference). The fixed start-up of ``fit``/``test`` calls is reported separately
  (``startup_s``); the bar is drawn into a buffer every ``progress_bar_refresh_rate`` batches;
* ``--device cuda``: mnistlab runs with ``trainer=gpu`` (bf16 autocast, the uint8 data set
  resident on the GPU); the plain loop uses the same autocast on the same resident tensors; the
  standard pipeline runs in float32 with pinned host memory, as the tutorials do;
* threads: ``torch.set_num_threads(--threads)`` (default 1) in this process; DataLoader
  workers run with torch's default of one thread each. On a shared 2-core machine more
  threads make timings unstable (see ../shared/STACK.md).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import math
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, open_dict

from mnistlab.callbacks.history import EpochHistory
from mnistlab.classifier_module import ClassifierModule
from mnistlab.config import register_resolvers
from mnistlab.data.datamodule import DATA_ROOT_ENV, MNISTDataModule
from mnistlab.data.loader import InMemoryBatches
from mnistlab.factory import build, build_callbacks, build_loggers, build_trainer
from mnistlab.files import json_safe, write_json
from mnistlab.optim import parameter_groups, prefer_fused
from mnistlab.utils import quiet_warnings

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
MODELS = ("softmax", "mlp", "lenet")  # the default set; any conf/model family works with --models
#: the CPU goals of issue 5, checked in every run
GOAL_SPEEDUP_MODEL, GOAL_SPEEDUP = "mlp", 3.0
GOAL_OVERHEAD_BATCH, GOAL_OVERHEAD = 512, 0.25
#: trainer.precision -> the autocast dtype the plain loop uses on a GPU (the standard
#: pipeline stays in float32, as the tutorials run it)
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


# --- configs ---------------------------------------------------------------------------------
def same_optimizer(module: Any, net: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer mnistlab's run builds (fused kernel included), for the other pipelines."""
    factory = prefer_fused(module.optimizer_factory, list(net.parameters()))
    return factory(params=parameter_groups(net, False))


def compose(
    model: str, batch_size: int, device: str, out_dir: Path, extra: list[str]
) -> DictConfig:
    """The config of ``python train.py model=<model> ...`` with hydra-runtime paths filled in."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    if not CONF_DIR.is_dir():
        raise SystemExit(
            f"error: config folder {CONF_DIR} not found; run the benchmark from a source checkout"
        )
    register_resolvers()
    overrides = [
        f"model={model}",
        "data=mnist",
        f"data.batch_size={batch_size}",
        f"trainer={'gpu' if device == 'cuda' else 'cpu'}",
        "trainer.max_epochs=1",
        # an interactive run's bar (every progress_bar_refresh_rate batches), drawn into a buffer
        "trainer.enable_progress_bar=true",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
        cfg.paths.run_name = f"bench_{model}"
        cfg.paths.group = "bench"
        del cfg.hydra
    return cfg


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- (a) the standard pipeline -------------------------------------------------------------
def standard_loader(
    dm: MNISTDataModule, train: bool, batch_size: int, workers: int, device: torch.device
):
    """torchvision dataset, per-sample ToTensor + Normalize, DataLoader: the tutorial pipeline."""
    from torch.utils.data import DataLoader
    from torchvision import transforms

    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((dm.mean,), (dm.std,))]
    )
    dataset = dm.spec.torchvision_class(
        str(dm.root), train=train, transform=transform, download=False
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )


def _take(batches: Any, limit: int | None) -> Iterator[Any]:
    for i, batch in enumerate(batches):
        if limit is not None and i >= limit:
            return
        yield batch


def train_loop(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Any,
    device: torch.device,
    limit: int | None,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    autocast: torch.dtype | None = None,
) -> tuple[int, float, float]:
    """A plain training loop; returns (images, seconds, CPU seconds of this thread)."""
    net.train()
    images = 0
    _sync(device)
    start, cpu_start = time.perf_counter(), time.thread_time()
    for x, y in _take(batches, limit):
        x, y = prepare(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            device.type, dtype=autocast or torch.float32, enabled=autocast is not None
        ):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        images += len(y)
    _sync(device)
    return images, time.perf_counter() - start, time.thread_time() - cpu_start


@torch.inference_mode()
def eval_loop(
    net: torch.nn.Module,
    batches: Any,
    device: torch.device,
    limit: int | None,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    autocast: torch.dtype | None = None,
) -> tuple[int, float]:
    """Test-set inference with loss and accuracy; returns (images, seconds)."""
    net.eval()
    images, correct = 0, torch.zeros((), device=device)
    loss_sum = torch.zeros((), device=device)
    _sync(device)
    start = time.perf_counter()
    for x, y in _take(batches, limit):
        x, y = prepare(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        with torch.autocast(
            device.type, dtype=autocast or torch.float32, enabled=autocast is not None
        ):
            logits = net(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        images += len(y)
    float(correct), float(loss_sum)  # the result is read, as any evaluation does
    _sync(device)
    return images, time.perf_counter() - start


# --- (c) the plain in-memory loop ----------------------------------------------------------
def make_normalizer(
    datamodule: MNISTDataModule, channels_last: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The data module's own normalization for uint8 batches (float batches pass through)."""

    def prepare(x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = datamodule.normalize(x)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    return prepare


# --- (d) the Lightning floor ---------------------------------------------------------------
class BareModule(L.LightningModule):
    """The same net and optimizer in the simplest LightningModule: a loss-only training step."""

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        prepare: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        super().__init__()
        self.net, self.optimizer, self.prepare = net, optimizer, prepare

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        x, y = batch
        return F.cross_entropy(self.net(self.prepare(x)), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer


def bare_lightning_run(
    module: BareModule,
    batches: InMemoryBatches,
    device: torch.device,
    limit: int | None,
    precision: str,
) -> tuple[int, float, float]:
    """One epoch of ``module`` through ``Trainer.fit``; (images, seconds, CPU seconds)."""
    timer = PhaseTimer()
    trainer = L.Trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=1,
        precision=precision,
        limit_train_batches=limit if limit is not None else 1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=batches)
    return timer.train_images, timer.train_s, timer.train_cpu_s


# --- (b) mnistlab through Lightning ---------------------------------------------------------
class PhaseTimer(L.Callback):
    """Training time without the validation loop, and test-loop time, with image counts."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.train_start: float | None = None
        self.train_cpu_start = 0.0
        self.train_s = self.val_s = self.test_s = 0.0
        self.train_cpu_s = self.val_cpu_s = 0.0
        self.train_images = self.test_images = 0
        self._mark = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.train_start is None:
            self.train_start = time.perf_counter()
            self.train_cpu_start = time.thread_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.train_images += len(batch[1])

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark = time.perf_counter()
        self._cpu_mark = time.thread_time()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.train_start is not None:  # not the sanity check
            self.val_s += time.perf_counter() - self._mark
            self.val_cpu_s += time.thread_time() - self._cpu_mark

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync(pl_module.device)
        self.train_s = time.perf_counter() - (self.train_start or 0.0) - self.val_s
        self.train_cpu_s = time.thread_time() - self.train_cpu_start - self.val_cpu_s

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark = time.perf_counter()

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:  # noqa: ANN001
        self.test_images += len(batch[1])

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync(pl_module.device)
        self.test_s = time.perf_counter() - self._mark


def mnistlab_run(cfg: DictConfig, out_dir: Path, eval_repeats: int) -> dict[str, Any]:
    """One realistic ``trainer.fit`` (one epoch) then ``eval_repeats`` test-loop runs."""
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule, module = build(cfg)
    datamodule.setup("fit")
    timer = PhaseTimer()
    loggers = build_loggers(cfg)
    callbacks = build_callbacks(cfg, extra=[EpochHistory(out_dir), timer], loggers=bool(loggers))
    trainer = build_trainer(cfg, callbacks, loggers)
    captured = io.StringIO()  # the progress bar is drawn (as in a real run) but not shown
    with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        fit_wall = time.perf_counter() - start
        train = {
            "images": timer.train_images,
            "seconds": timer.train_s,
            "cpu_seconds": timer.train_cpu_s,
            "overhead_s": fit_wall - timer.train_s - timer.val_s,
        }
        # test-set inference: the same trainer config and loggers, without the test-time
        # artifact callbacks (figures, Grad-CAM, ...), which are reports, not inference
        tester = build_trainer(cfg, [timer], loggers)
        evals = []
        for _ in range(eval_repeats):
            timer.test_images = 0
            start = time.perf_counter()
            tester.test(module, datamodule=datamodule, verbose=False)
            wall = time.perf_counter() - start
            evals.append(
                {
                    "images": timer.test_images,
                    "seconds": timer.test_s,
                    "overhead_s": wall - timer.test_s,
                }
            )
    return {"train": train, "eval": evals, "module": module, "datamodule": datamodule}


# --- one model --------------------------------------------------------------------------
def _ips(images: int, seconds: float) -> float:
    return images / seconds if seconds > 0 else math.nan


def _median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def bench_model(
    model: str,
    device: torch.device,
    repeats: int,
    train_batches: int | None,
    eval_batches: int | None,
    batch_size: int,
    workers: tuple[int, ...],
    overhead_batch: int,
    scratch: Path,
    overhead_rounds: int = 3,
) -> dict[str, Any]:
    """Round-robin repeats of every pipeline for one model; medians and ratios."""
    limits = []
    if train_batches is not None:
        limits += [f"trainer.limit_train_batches={train_batches}", "trainer.limit_val_batches=2"]
    if eval_batches is not None:
        limits += [f"trainer.limit_test_batches={eval_batches}"]
    runs: dict[str, list[float]] = {}
    cpu_runs: dict[str, list[float]] = {}  # (b) and (c) from this thread's CPU time: robust to load
    eval_runs: dict[str, list[float]] = {}
    overheads: dict[str, list[float]] = {"fit_startup_s": [], "test_startup_s": []}
    params = 0
    eval_batch_size = 0
    base = compose(model, batch_size, device.type, scratch, limits)  # composing is slow: once
    # the batch-512 epochs are short (0.2-6 s), so each repeat runs them overhead_rounds times
    sizes = [batch_size] + (
        [overhead_batch] * overhead_rounds if overhead_batch != batch_size else []
    )
    for repeat in range(repeats):
        for round_, bs in enumerate(sizes):
            tag = "" if bs == batch_size else f"_b{bs}"
            out = scratch / f"{model}{tag}_{repeat}_{round_}"
            cfg = copy.deepcopy(base)
            cfg.seed, cfg.data.batch_size, cfg.paths.output_dir = repeat, bs, str(out)
            # (b) mnistlab: a realistic run through Lightning
            result = mnistlab_run(cfg, out, eval_repeats=1 if tag else 2)
            module: ClassifierModule = result["module"]
            dm: MNISTDataModule = result["datamodule"]
            params = sum(p.numel() for p in module.net.parameters())
            eval_batch_size = dm.eval_batch_size
            runs.setdefault(f"mnistlab{tag}", []).append(
                _ips(result["train"]["images"], result["train"]["seconds"])
            )
            cpu_runs.setdefault(f"mnistlab{tag}", []).append(
                _ips(result["train"]["images"], result["train"]["cpu_seconds"])
            )
            if not tag:
                overheads["fit_startup_s"].append(result["train"]["overhead_s"])
                for e in result["eval"]:
                    eval_runs.setdefault("mnistlab", []).append(_ips(e["images"], e["seconds"]))
                    overheads["test_startup_s"].append(e["overhead_s"])
            # (c) the plain loop over the same resident tensors, same net type and optimizer
            _, fresh = build(cfg)
            net = fresh.net.to(device)
            optimizer = same_optimizer(fresh, net)
            prepare = make_normalizer(dm, fresh.channels_last)
            # the floor does the same arithmetic as mnistlab: its autocast on a GPU (bf16-mixed)
            amp = AUTOCAST.get(str(cfg.trainer.precision)) if device.type == "cuda" else None
            x, y = (t.to(device) for t in dm.split("train"))
            n, s, cpu = train_loop(
                net,
                optimizer,
                InMemoryBatches(x, y, bs, shuffle=True, seed=repeat),
                device,
                train_batches,
                prepare,
                amp,
            )
            runs.setdefault(f"plain{tag}", []).append(_ips(n, s))
            cpu_runs.setdefault(f"plain{tag}", []).append(_ips(n, cpu))
            if tag:
                # (d) the same net and optimizer in the simplest LightningModule
                _, fresh = build(cfg)
                net = fresh.net.to(device)
                optimizer = same_optimizer(fresh, net)
                bare = BareModule(net, optimizer, prepare)
                n, s, cpu = bare_lightning_run(
                    bare,
                    InMemoryBatches(x, y, bs, shuffle=True, seed=repeat),
                    device,
                    train_batches,
                    str(cfg.trainer.precision),
                )
                runs.setdefault(f"bare{tag}", []).append(_ips(n, s))
                cpu_runs.setdefault(f"bare{tag}", []).append(_ips(n, cpu))
                continue
            tx, ty = (t.to(device) for t in dm.split("test"))
            for _ in range(2):
                n, s = eval_loop(
                    net,
                    InMemoryBatches(tx, ty, eval_batch_size),
                    device,
                    eval_batches,
                    prepare,
                    amp,
                )
                eval_runs.setdefault("plain", []).append(_ips(n, s))
            # (a) the standard pipeline, each worker count
            for w in workers:
                _, fresh = build(cfg)
                net = fresh.net.to(device)  # the tutorials' default memory layout
                optimizer = same_optimizer(fresh, net)
                identity = make_normalizer(dm, False)
                loader = standard_loader(dm, True, bs, w, device)
                n, s, _ = train_loop(net, optimizer, loader, device, train_batches, identity)
                runs.setdefault(f"standard_w{w}", []).append(_ips(n, s))
                loader = standard_loader(dm, False, eval_batch_size, w, device)
                n, s = eval_loop(net, loader, device, eval_batches, identity)
                eval_runs.setdefault(f"standard_w{w}", []).append(_ips(n, s))

    def summary(table: dict[str, list[float]]) -> dict[str, Any]:
        med = {k: _median(v) for k, v in table.items()}
        standard = max(med[f"standard_w{w}"] for w in workers)
        row = {
            "standard_ips": standard,
            **{f"standard_w{w}_ips": med[f"standard_w{w}"] for w in workers},
            "mnistlab_ips": med["mnistlab"],
            "plain_ips": med["plain"],
            "mnistlab_vs_standard": med["mnistlab"] / standard,
            "plain_vs_mnistlab": med["plain"] / med["mnistlab"],
            "repeats_ips": {k: [round(v, 1) for v in vs] for k, vs in table.items()},
        }
        return row

    train_table = {k: v for k, v in runs.items() if not k.endswith(f"_b{overhead_batch}")}
    row = summary(train_table)
    row = {"params": params, "batch_size": batch_size, **row}
    row["plain_vs_mnistlab_cpu_time"] = _median(cpu_runs["plain"]) / _median(cpu_runs["mnistlab"])
    row["eval"] = {"batch_size": eval_batch_size, **summary(eval_runs)}
    row["startup_s"] = {k: round(_median(v), 3) for k, v in overheads.items()}
    if overhead_batch != batch_size:
        b = _median(runs[f"mnistlab_b{overhead_batch}"])
        c = _median(runs[f"plain_b{overhead_batch}"])
        d = _median(runs[f"bare_b{overhead_batch}"])
        b_cpu = _median(cpu_runs[f"mnistlab_b{overhead_batch}"])
        c_cpu = _median(cpu_runs[f"plain_b{overhead_batch}"])
        d_cpu = _median(cpu_runs[f"bare_b{overhead_batch}"])
        row[f"batch_{overhead_batch}"] = {
            "mnistlab_ips": b,
            "plain_ips": c,
            "bare_lightning_ips": d,
            "plain_vs_mnistlab": c / b,
            "lightning_overhead": c / b - 1,
            "lightning_overhead_cpu_time": c_cpu / b_cpu - 1,
            # the floor: Lightning's loop with nothing of mnistlab's in it
            "bare_lightning_overhead": c / d - 1,
            "bare_lightning_overhead_cpu_time": c_cpu / d_cpu - 1,
            "repeats_ips": {
                k: runs[f"{k}_b{overhead_batch}"] for k in ("mnistlab", "plain", "bare")
            },
        }
    return row


# --- report ---------------------------------------------------------------------------------
def goals(results: dict[str, Any], overhead_batch: int) -> list[dict[str, Any]]:
    checks = []
    if GOAL_SPEEDUP_MODEL in results:
        value = results[GOAL_SPEEDUP_MODEL]["mnistlab_vs_standard"]
        checks.append(
            {
                "goal": f"{GOAL_SPEEDUP_MODEL}: mnistlab >= {GOAL_SPEEDUP:g}x the standard pipeline (its faster worker count)",
                "value": round(value, 2),
                "met": value >= GOAL_SPEEDUP,
            }
        )
    key = f"batch_{overhead_batch}"
    for model, row in results.items():
        if key in row:
            value = row[key]["lightning_overhead"]
            checks.append(
                {
                    "goal": f"{model}: Lightning + callbacks overhead <= {GOAL_OVERHEAD:.0%} over the plain loop at batch {overhead_batch}",
                    "value": round(value, 3),
                    "met": value <= GOAL_OVERHEAD,
                }
            )
    return checks


def format_table(report: dict[str, Any]) -> str:
    workers = report["settings"]["workers"]
    std_cols = [f"std w{w}" for w in workers]
    head = ["model", "phase", *std_cols, "mnistlab", "plain", "(b)/(a)", "(c)/(b)"]
    lines = []
    for model, row in report["models"].items():
        for phase, r in (("train", row), ("eval", row["eval"])):
            lines.append(
                [model, phase]
                + [f"{r[f'standard_w{w}_ips']:,.0f}" for w in workers]
                + [f"{r['mnistlab_ips']:,.0f}", f"{r['plain_ips']:,.0f}"]
                + [f"{r['mnistlab_vs_standard']:.2f}x", f"{r['plain_vs_mnistlab']:.2f}x"]
            )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    out = [
        "images/s, median of repeats; (a) = standard pipeline at its faster worker count, "
        "(b) = mnistlab, (c) = plain loop",
        fmt.format(*head),
        *(fmt.format(*line) for line in lines),
    ]
    ob = report["settings"]["overhead_batch"]
    for model, row in report["models"].items():
        if f"batch_{ob}" in row:
            r = row[f"batch_{ob}"]
            out.append(
                f"batch {ob} {model}: mnistlab {r['mnistlab_ips']:,.0f}, plain {r['plain_ips']:,.0f} images/s, "
                f"Lightning overhead {r['lightning_overhead']:+.1%} (by CPU time {r['lightning_overhead_cpu_time']:+.1%}); "
                f"bare LightningModule {r['bare_lightning_ips']:,.0f} images/s, floor {r['bare_lightning_overhead']:+.1%} "
                f"(by CPU time {r['bare_lightning_overhead_cpu_time']:+.1%})"
            )
    for g in report["goals"]:
        out.append(f"[{'met' if g['met'] else 'NOT met'}] {g['goal']}: {g['value']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few batches per repeat (CI smoke run)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="write the results as JSON to this file"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), help="conf/model families (e.g. cnn)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeats per pipeline (default 3; --quick 2)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--overhead-batch", type=int, default=GOAL_OVERHEAD_BATCH)
    parser.add_argument(
        "--overhead-rounds",
        type=int,
        default=None,
        help="batch-512 epochs per pipeline per repeat (default 3; --quick 1)",
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers of (a)"
    )
    parser.add_argument(
        "--data-root", default=None, help=f"data folder (default: ${DATA_ROOT_ENV} or data)"
    )
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA GPU; run with --device cpu")
    unknown = [m for m in args.models if not (CONF_DIR / "model" / f"{m}.yaml").is_file()]
    if unknown:
        known = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
        raise SystemExit(
            f"error: --models {' '.join(unknown)}: no such conf/model; choose from {', '.join(known)}"
        )
    if args.repeats is not None and args.repeats < 1:
        raise SystemExit(f"error: --repeats={args.repeats} must be >= 1")
    quiet_warnings()
    for name in ("lightning.pytorch", "lightning.fabric"):  # start-up chatter, once per fit
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats = args.repeats or (2 if args.quick else 3)
    overhead_rounds = (
        args.overhead_rounds if args.overhead_rounds is not None else 1 if args.quick else 3
    )
    if overhead_rounds < 1:
        raise SystemExit(f"error: --overhead-rounds={overhead_rounds} must be >= 1")
    train_batches, eval_batches = (10, 1) if args.quick else (None, None)
    extra = [] if args.data_root is None else [f"data.root={args.data_root}"]
    if extra:  # compose() reads the data root through the config
        import os

        os.environ[DATA_ROOT_ENV] = args.data_root

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mnistlab-bench-") as scratch:
        for model in args.models:
            print(f"benchmarking {model} ...", file=sys.stderr, flush=True)
            results[model] = bench_model(
                model,
                device,
                repeats,
                train_batches,
                eval_batches,
                args.batch_size,
                tuple(args.workers),
                args.overhead_batch,
                Path(scratch),
                overhead_rounds,
            )
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": __import__("os").cpu_count(),
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "lightning": L.__version__,
            "threads": args.threads,
        },
        "settings": {
            "quick": args.quick,
            "repeats": repeats,
            "train_batches_per_repeat": train_batches or "full epoch",
            "eval_batches_per_repeat": eval_batches or "full test set",
            "batch_size": args.batch_size,
            "overhead_batch": args.overhead_batch,
            "overhead_rounds": overhead_rounds,
            "workers": list(args.workers),
            "data": "mnist",
        },
        "models": results,
    }
    report["goals"] = goals(results, args.overhead_batch)
    report = json_safe(report)
    print(format_table(report))
    if args.out is not None:
        write_json(args.out, report)
        print(f"wrote {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
