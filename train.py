"""Train one model, or a grid with -m.  Examples:

    python train.py                                   # MLP on MNIST, defaults
    python train.py -m model=mlp,cnn optimizer=adam,sgd
    python train.py -m experiment=depth

Everything happens in src/mnistlab/train.py; configs live in conf/.
"""

import hydra
from omegaconf import DictConfig

from mnistlab.config import register_resolvers
from mnistlab.run import run

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()
