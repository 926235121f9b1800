"""Where a run writes: a folder of its own for every single run, the checkpoint's folder for a
resumed one, and the same sweep folder only for the same sweep (a Hydra callback)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from mnistlab.config import dir_suffix, unwritable_reason
from mnistlab.jobs import is_follower
from mnistlab.resume import differences, identity, run_dir_of


def claim_run_dir(path: str | Path, suffix: str = "") -> Path:
    """Create ``path``, or when it exists ``<stem>-2<suffix>``, ``-3``, ...; returns the one made.

    ``mkdir`` either creates a folder or fails because it exists, so two processes started in
    the same second with the same overrides never share a folder. ``suffix`` is the
    ``_<overrides>`` end of the name; the counter goes before it, after the time:
    ``12-00-00_model=cnn`` then ``12-00-00-2_model=cnn``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    stem, tail = (name[: -len(suffix)], suffix) if suffix and name.endswith(suffix) else (name, "")
    for n in itertools.count(1):
        candidate = path.with_name(f"{stem}-{n}{tail}" if n > 1 else name)
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")


def _set(config: DictConfig, key: str, value: str) -> None:
    node, leaf = key.rsplit(".", 1)
    parent = OmegaConf.select(config, node)
    with read_write(parent), open_dict(parent):
        parent[leaf] = value


def _fail(key: str, folder: Any, reason: str) -> None:
    sys.exit(
        f"error: {key}={folder} cannot be written ({reason}); "
        f"point {key} at a writable folder, e.g. {key}=outputs/my_run"
    )


class RunDirectory(Callback):
    """Hydra callback choosing a single run's folder and guarding a sweep's folder.

    Single runs (before Hydra creates anything):

    - ``hydra.run.dir`` given on the command line: used as it is (a run there continues or
      skips what the folder holds, see :func:`mnistlab.resume.plan_job`);
    - ``ckpt_path`` inside a run folder: the run continues in that folder;
    - otherwise a new folder, claimed atomically (:func:`claim_run_dir`).

    Sweeps: a folder that cannot be written, or that holds a sweep of another config, ends the
    command with one line before any job starts.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        key = "hydra.run.dir"
        folder = str(config.hydra.run.dir)
        explicit = any(str(o).startswith(f"{key}=") for o in config.hydra.overrides.hydra)
        if explicit or is_follower():
            self._check(key, folder)
            return
        ckpt = OmegaConf.select(config, "ckpt_path", default=None)
        home = run_dir_of(ckpt) if ckpt and Path(str(ckpt)).is_file() else None
        if home is not None:
            self._check(key, home)
            _set(config, key, str(home))
            return
        parent = Path(folder).parent
        reason = unwritable_reason(parent)
        if reason:
            _fail(key, folder, reason)
        try:
            claimed = claim_run_dir(folder, dir_suffix(config.hydra.job.override_dirname))
        except OSError as err:
            _fail(key, folder, err.strerror or type(err).__name__)
        _set(config, key, str(claimed))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        key = "hydra.sweep.dir"
        sweep_dir = Path(str(config.hydra.sweep.dir))
        self._check(key, sweep_dir)
        previous = sweep_dir / "multirun.yaml"  # Hydra rewrites it when the sweep starts
        if previous.is_file():
            try:
                before = identity(OmegaConf.load(previous), resolve=False)
            except Exception:  # unreadable: nothing to compare with
                return
            diff = differences(before, identity(config, resolve=False))
            if diff:
                sys.exit(
                    f"error: {key}={sweep_dir} holds a sweep of another config ({diff}); "
                    f"continue it with the same command, or give this sweep another {key}"
                )

    @staticmethod
    def _check(key: str, folder: Any) -> None:
        reason = unwritable_reason(folder) if folder else None
        if reason:
            _fail(key, folder, reason)
