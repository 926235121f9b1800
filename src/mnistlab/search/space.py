"""The search space: Hydra's sweep syntax (``interval``, ``range``, ``choice``, ``tag``) as Optuna distributions.

The same text that names a grid for Hydra's basic sweeper names a distribution here,
so a search space reads like any other override:

- ``interval(a, b)``: a float in [a, b]; ``tag(log, interval(a, b))`` samples it on a
  log scale, ``tag(int, interval(a, b))`` draws whole numbers in [a, b].
- ``range(a, b[, step])``: the values Python's ``range`` yields (``b`` excluded), as an
  ordered numeric distribution (floats allowed, e.g. ``range(0.1, 0.5, 0.1)``).
- ``choice(x, y, ...)`` or ``x,y,...``: one of the listed values (lists and strings included).
- anything else, e.g. ``0.5``: the same value for every trial.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from mnistlab.errors import ConfigError

SYNTAX = (
    "use interval(a, b), tag(log, interval(a, b)), tag(int, interval(a, b)), "
    "range(a, b[, step]) or choice(x, y, ...)"
)
KNOWN_TAGS = {"log", "int"}
#: choices Optuna stores as they are; strings, lists and dicts are stored as their override text
PRIMITIVE = (type(None), bool, int, float)


@dataclass
class SearchSpace:
    """What each trial samples, and the overrides every trial shares."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)


def value_text(value: Any) -> str:
    """A parsed override value back as override text (``[256,128]``, ``null``, ``0.001``)."""
    return Override._get_value_element_as_str(value)


def _where(key: str, text: str, source: str) -> str:
    return f"{source}.{key}={text!r}" if source else f"{key}={text!r}"


def _number_range(key: str, sweep: RangeSweep, where: str) -> BaseDistribution:
    values = list(sweep.range())
    if not values:
        raise ConfigError(f"{where} is empty: range(a, b, step) needs a < b for step > 0")
    if len(values) == 1:
        return CategoricalDistribution([values[0]])
    low, high, step = values[0], values[-1], values[1] - values[0]
    if low > high:  # a negative step walks down; the distribution only needs its bounds
        low, high, step = high, low, -step
    log = "log" in sweep.tags
    if all(isinstance(v, int) for v in values) and isinstance(sweep.step, int):
        if log and step != 1:
            raise ConfigError(
                f"{where}: Optuna samples a log-scale int range only with step 1; drop the step or the log tag"
            )
        return IntDistribution(int(low), int(high), log=log, step=1 if log else int(step))
    if log:
        raise ConfigError(f"{where}: a float range with a step cannot be log-scaled; {SYNTAX}")
    step = float(sweep.step)
    # the last value a float step reaches, so that (high - low) is a multiple of step
    high = float(low) + step * math.floor((float(high) - float(low)) / step + 1e-9)
    return FloatDistribution(float(low), round(high, 12), step=step)


def _interval(sweep: IntervalSweep, where: str) -> BaseDistribution:
    low, high = sweep.start, sweep.end
    if low is None or high is None or not low < high:
        raise ConfigError(f"{where}: interval(a, b) needs a < b")
    log = "log" in sweep.tags
    if log and low <= 0:
        raise ConfigError(f"{where}: a log-scale interval needs a > 0")
    if "int" in sweep.tags:
        if low != int(low) or high != int(high):
            raise ConfigError(f"{where}: tag(int, interval(a, b)) needs whole-number bounds")
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _choices(sweep: ChoiceSweep | list, where: str) -> BaseDistribution:
    items = sweep.list if isinstance(sweep, ChoiceSweep) else sweep
    values = [Override._convert_value(v) for v in items]
    if not values:
        raise ConfigError(f"{where}: choice() needs at least one value")
    stored = [v if isinstance(v, PRIMITIVE) else value_text(v) for v in values]
    if len(set(map(repr, stored))) != len(stored):
        raise ConfigError(f"{where}: choice() lists a value twice")
    return CategoricalDistribution(stored)


def to_distribution(override: Override, source: str = "") -> BaseDistribution | None:
    """The distribution an override names, or None when it is a plain value (the same for every trial)."""
    key = override.key_or_group
    where = _where(key, override.get_value_string(), source)
    value = override.value()
    tags = getattr(value, "tags", set()) or set()
    unknown = tags - KNOWN_TAGS
    if unknown:
        raise ConfigError(
            f"{where}: unknown tag {', '.join(sorted(unknown))}; the tags are log and int"
        )
    if override.value_type is None or not override.is_sweep_override():
        return None
    if isinstance(value, IntervalSweep):
        return _interval(value, where)
    if isinstance(value, RangeSweep):
        if value.shuffle:
            raise ConfigError(f"{where}: shuffle() has no meaning for a search; {SYNTAX}")
        return _number_range(key, value, where)
    if isinstance(value, ChoiceSweep):
        if value.shuffle:
            raise ConfigError(f"{where}: shuffle() has no meaning for a search; {SYNTAX}")
        if "int" in tags:
            raise ConfigError(f"{where}: the int tag applies to interval(a, b) only")
        return _choices(value, where)
    raise ConfigError(f"{where}: glob() is not a search space; {SYNTAX}")


def parse_override(text: str, source: str = "") -> Override:
    """One ``key=value`` override, with a ConfigError naming it when Hydra cannot parse it."""
    try:
        return OverridesParser.create().parse_override(text)
    except HydraException as err:
        key, _, value = text.partition("=")
        reason = " ".join(str(err).split()).split(" See https://")[0]
        reason = re.sub(r"^HydraException while evaluating '.*?': ", "", reason)
        raise ConfigError(
            f"{_where(key, value, source)} is not a search-space expression ({reason}); {SYNTAX}"
        ) from None


def parse_search_space(
    params: Mapping[str, Any] | None, arguments: Iterable[str] = ()
) -> SearchSpace:
    """``hydra.sweeper.params`` plus command-line overrides -> distributions and shared overrides.

    A command-line override of a key that ``params`` also names wins (fixed value or new range),
    so ``optimizer.lr=0.01`` on the command line takes ``optimizer.lr`` out of the search.
    """
    space = SearchSpace()
    entries = [(f"{k}={_param_text(v)}", "hydra.sweeper.params") for k, v in (params or {}).items()]
    entries += [(a, "") for a in arguments]
    overrides: dict[str, tuple[Override, str]] = {}
    for text, source in entries:
        override = parse_override(text, source)
        overrides[override.get_key_element()] = (override, source)
    for key, (override, source) in overrides.items():
        distribution = to_distribution(override, source)
        if distribution is None:
            space.fixed.append(override.input_line or f"{key}={override.get_value_string()}")
        elif override.is_delete() or override.is_add() or override.is_force_add():
            raise ConfigError(
                f"{key}: search over an existing key (drop the +/++/~ prefix) or add it with a fixed value first"
            )
        else:
            space.distributions[key] = distribution
    return space


def _param_text(value: Any) -> str:
    """A ``params`` entry as override text (YAML may have turned ``0.5`` into a float)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def suggest(trial: Any, name: str, distribution: BaseDistribution) -> Any:
    """Ask ``trial`` for ``name`` in ``distribution`` (through the public ``suggest_*`` API)."""
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise TypeError(f"unsupported distribution {distribution!r}")


def override_for(name: str, value: Any, distribution: BaseDistribution) -> str:
    """The override that hands a sampled value to the job.

    A continuous float goes at 6 significant digits (job folder names stay readable; the
    difference is far below what a hyperparameter can feel); categorical values exactly.
    """
    if isinstance(value, str):
        return f"{name}={value}"  # string choices are stored as override text
    if isinstance(value, float) and isinstance(distribution, FloatDistribution):
        return f"{name}={value:.6g}"
    return f"{name}={value_text(value)}"
