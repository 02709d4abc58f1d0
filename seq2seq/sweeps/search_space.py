"""Hydra sweep overrides (`choice`, `range`, `interval`) -> Optuna distributions."""

from __future__ import annotations

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from seq2seq.errors import InputError


def distribution_of(override: Override) -> BaseDistribution:
    """The Optuna distribution that a sweep override describes.

    `choice(a, b)` -> categorical; `range(start, stop, step)` -> int (or stepped float) without `stop`;
    `interval(lo, hi)` -> float, `int(interval(lo, hi))` -> int; `tag(log, ...)` samples on a log scale.
    """
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if all(isinstance(x, int) for x in (start, stop, step)):
            return IntDistribution(start, stop - step, step=step)
        return FloatDistribution(start, stop - step, step=step)
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(value.start, value.end, log=log)
    raise InputError(f"{override.input_line!r}: not a sweep; use choice(...), range(...) or interval(...)")


def split_overrides(
    lines: list[str], parser: OverridesParser
) -> tuple[list[str], dict[str, BaseDistribution]]:
    """Command-line and config overrides -> (overrides every trial gets, search space by key).

    A later line for the same key replaces an earlier one, so `hydra.sweeper.params` in a config can
    be narrowed or fixed from the command line.
    """
    fixed: dict[str, str] = {}
    space: dict[str, BaseDistribution] = {}
    for override in parser.parse_overrides(lines):
        key = override.get_key_element()
        fixed.pop(key, None)
        space.pop(key, None)
        if override.is_sweep_override():
            if override.is_hydra_override():
                raise InputError(
                    f"{override.input_line!r}: the Optuna sweeper cannot sweep Hydra's own settings"
                )
            space[key] = distribution_of(override)
        else:
            fixed[key] = f"{key}={override.get_value_element_as_str()}"
    return list(fixed.values()), space
