"""Train one model, or a grid with -m.  Examples:

    python train.py                                   # MLP on MNIST, defaults
    python train.py -m model=mlp,cnn optimizer=adam,sgd
    python train.py -m experiment=depth

Everything happens in src/mnistlab/run.py; configs live in conf/. A multirun with a
failed job exits with status 1 after its report.
"""

import sys

import hydra
from omegaconf import DictConfig

from mnistlab.config import register_resolvers
from mnistlab.report.hydra_callback import sweep_exit_status
from mnistlab.run import run

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()
    sys.exit(sweep_exit_status())
