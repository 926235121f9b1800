"""The one-line-per-epoch progress log of runs that draw no progress bar."""

from __future__ import annotations

import io
import re

import pytest
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader, TensorDataset

from mnistlab.callbacks.progress_log import EpochProgressLog, progress_line, short_float
from mnistlab.classifier_module import ClassifierModule
from mnistlab.errors import ConfigError
from mnistlab.factory import make_trainer
from mnistlab.models import MLP


def test_the_line_of_an_epoch():
    metrics = {"train/loss": 0.31234, "val/loss": 0.29812, "val/acc": 0.912345, "train/acc": 0.9}
    assert progress_line(3, 10, metrics, 8.1e-4, 12.43) == (
        "epoch 3/10  train/loss 0.3123  val/loss 0.2981  val/acc 0.9123  lr 8.1e-4  12.4 s"
    )
    # no validation, no limit on epochs, no optimizer yet: what is known is shown
    assert progress_line(2, -1, {"train/loss": 1.5}, float("nan"), 0.04) == (
        "epoch 2  train/loss 1.5000  0.0 s"
    )
    assert [short_float(v) for v in (0.1, 1e-3, 0.00081, 0.0)] == [
        "1.0e-1",
        "1.0e-3",
        "8.1e-4",
        "0",
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fit(trainer) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 1, 4, 4), torch.randint(0, 10, (32,)))
    net = MLP(10, (1, 4, 4), hidden_sizes=(8,))
    module = ClassifierModule(net, optimizer=lambda params: torch.optim.SGD(params, lr=0.05))
    trainer.fit(module, DataLoader(data, batch_size=8), DataLoader(data, batch_size=16))


@pytest.mark.parametrize("stderr", [io.StringIO, Terminal])
def test_one_flushed_line_per_epoch_when_stderr_is_not_a_terminal(monkeypatch, tmp_path, stderr):
    err = stderr()
    monkeypatch.setattr("sys.stderr", err)
    trainer = make_trainer(
        max_epochs=3, logger=False, enable_checkpointing=False, enable_model_summary=False,
        default_root_dir=tmp_path, num_sanity_val_steps=0, accelerator="cpu",
    )  # fmt: skip
    logs = [c for c in trainer.callbacks if isinstance(c, EpochProgressLog)]
    bars = [c for c in trainer.callbacks if isinstance(c, TQDMProgressBar)]
    if stderr is Terminal:  # a person watches the bar: no log lines
        assert len(bars) == 1 and not logs
        return
    assert len(logs) == 1 and not bars
    _fit(trainer)
    lines = [line for line in err.getvalue().splitlines() if line.startswith("epoch ")]
    pattern = r"epoch {}/3  train/loss \d+\.\d{{4}}  val/loss \d+\.\d{{4}}  val/acc 0\.\d{{4}}  lr 5\.0e-2  \d+\.\d s"
    assert len(lines) == 3
    for epoch, line in enumerate(lines, start=1):
        assert re.fullmatch(pattern.format(epoch), line), line
    # the numbers are the epoch's logged values
    assert lines[-1].split("  ")[3] == f"val/acc {float(trainer.callback_metrics['val/acc']):.4f}"


def test_progress_log_can_be_forced_either_way(monkeypatch):
    monkeypatch.setattr("sys.stderr", Terminal())
    on = make_trainer(enable_progress_bar=True, progress_log=True, logger=False)
    assert any(isinstance(c, EpochProgressLog) for c in on.callbacks)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    off = make_trainer(progress_log=False, logger=False)
    assert not any(isinstance(c, EpochProgressLog) for c in off.callbacks)
    with pytest.raises(ConfigError, match="trainer.progress_log"):
        make_trainer(progress_log="sometimes")
