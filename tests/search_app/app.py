"""A stand-in for train.py in the search tests: a known objective, per-epoch reports, no training.

``val/acc`` of a trial rises over ``epochs`` towards ``score(x, y)``, peaked at x=0.3, y=4;
each epoch is reported to the trial like train.py's pruning callback does, and the job
writes ``metrics.json`` as train.py does. ``crash_at_trial=N`` kills the whole process
during trial N, as a power cut or ``kill -9`` would.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnistlab.search.trial import TrialLink


def score(x: float, y: float) -> float:
    return 0.9 - 0.5 * (x - 0.3) ** 2 - 0.02 * (y - 4) ** 2


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    out = Path(hydra_cfg.runtime.output_dir)
    if int(hydra_cfg.job.num) == cfg.crash_at_trial:
        os._exit(9)
    link = TrialLink.from_hydra()
    reporter = link.reporter() if link is not None else None
    status, value, epochs = "ok", 0.0, 0
    for epoch in range(cfg.epochs):
        time.sleep(cfg.sleep)
        value, epochs = score(cfg.x, cfg.y) * (epoch + 1) / cfg.epochs, epoch + 1
        if reporter is not None and reporter.report(value, epoch + 1):
            status = "pruned"
            break
    params = int(1000 * cfg.y)
    metrics = {"status": status, "val/acc_best": value, "test/acc": value, "epochs": epochs}
    metrics.update({"params": params, "train_time_s": 0.01 * epochs})
    (out / "metrics.json").write_text(json.dumps(metrics))
    return value


if __name__ == "__main__":
    main()
