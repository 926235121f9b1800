"""Every picture and table a run writes, one file each: compute + plot + writer.

To add one: write ``artifacts/<name>.py`` with an :class:`~mnistlab.artifacts.base.Artifact`
subclass (``name``, ``kind``, ``files``) and add ``conf/callbacks/<name>.yaml``
(plus one line in ``conf/callbacks/default.yaml`` or ``diagnostics.yaml`` to switch it
on there). The modules here are discovered, so nothing else lists them: the default
config, ``eval.py``, the README table and the tests all read :func:`registry`.

    python -m mnistlab.artifacts        # the README's table of artifacts
"""

from __future__ import annotations

import importlib
import pkgutil

from mnistlab.artifacts.base import KINDS, REGISTRY, Artifact, Kind

#: modules of this package that hold shared plumbing, not artifacts
PLUMBING = frozenset({"base", "figures", "layers", "to_loggers", "evaluation", "trained_models"})


def registry() -> dict[str, type[Artifact]]:
    """name -> artifact class, for every artifact module in this package."""
    for module in pkgutil.iter_modules(__path__):
        if module.name not in PLUMBING and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    order = {kind: i for i, kind in enumerate(KINDS)}
    return dict(sorted(REGISTRY.items(), key=lambda item: (order[item[1].kind], item[0])))


def names(kind: Kind | None = None) -> list[str]:
    """Registered artifact names, of one ``kind`` or all."""
    return [n for n, cls in registry().items() if kind is None or cls.kind == kind]


def markdown_table() -> str:
    """The README's table: one row per artifact, with its kind, files and purpose."""
    rows = ["| artifact | kind | files | what it shows |", "| --- | --- | --- | --- |"]
    for name, cls in registry().items():
        where = f"{cls.subdir}/" if cls.subdir else ""
        listed = ", ".join(f"`{where}{f}`" for f in cls.files)
        rows.append(f"| `{name}` | {cls.kind} | {listed} | {cls.caption} |")
    return "\n".join(rows)


__all__ = ["Artifact", "KINDS", "Kind", "markdown_table", "names", "registry"]
