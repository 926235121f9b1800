"""Console scripts (``pyproject.toml``): ``mnistlab-train``, ``mnistlab-eval``,
``mnistlab-predict``, ``mnistlab-report``.

``mnistlab-train`` is ``python train.py`` from anywhere: it composes the configs of a
mnistlab checkout's ``conf/`` folder, found in this order: ``$MNISTLAB_CONF_DIR``,
``./conf`` (run from the checkout), the checkout this package was installed from
(``pip install -e .``). The configs are not shipped inside the package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONF_ENV = "MNISTLAB_CONF_DIR"


def find_conf_dir() -> Path | None:
    """The ``conf/`` folder holding ``train.yaml`` (see the module docstring), or None."""
    candidates = [
        os.environ.get(CONF_ENV),
        Path.cwd() / "conf",
        Path(__file__).resolve().parents[2] / "conf",  # src/mnistlab/cli.py -> <checkout>/conf
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train.yaml").is_file():
            return Path(candidate).resolve()
    return None


def train() -> None:
    """``mnistlab-train [overrides]``: the same as ``python train.py [overrides]``."""
    conf = find_conf_dir()
    if conf is None:
        sys.exit(
            f"error: mnistlab-train found no conf/train.yaml; run it from a mnistlab checkout "
            f"or set {CONF_ENV}=/path/to/mnistlab/conf"
        )
    import hydra

    from mnistlab.config import register_resolvers
    from mnistlab.report.hydra_callback import sweep_exit_status
    from mnistlab.run import run

    register_resolvers()
    if not any(a.startswith("hydra.job.name=") for a in sys.argv[1:]):
        sys.argv.insert(1, "hydra.job.name=train")  # as `python train.py` names its job and log
    hydra.main(version_base="1.3", config_path=str(conf), config_name="train")(run)()
    sys.exit(sweep_exit_status())  # 1 after a multirun with a failed job
