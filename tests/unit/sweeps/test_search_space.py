"""Hydra sweep syntax -> Optuna distributions."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from seq2seq.sweeps.search_space import distribution_of, split_overrides

PARSER = OverridesParser.create()


@pytest.mark.parametrize(
    "line,expected",
    [
        ("a=choice(64,128,'x')", CategoricalDistribution([64, 128, "x"])),
        ("a=range(1,4)", IntDistribution(1, 3)),
        ("a=range(0.1,0.5,0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        ("a=interval(0,0.5)", FloatDistribution(0.0, 0.5)),
        ("a=tag(log,interval(1e-4,1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
        ("a=int(interval(1,8))", IntDistribution(1, 8)),
        ("a=tag(log,int(interval(16,512)))", IntDistribution(16, 512, log=True)),
    ],
)
def test_sweep_becomes_distribution(line: str, expected) -> None:
    got = distribution_of(PARSER.parse_override(line))
    assert type(got) is type(expected)
    assert (
        got._asdict() == pytest.approx(expected._asdict())
        if not isinstance(got, CategoricalDistribution)
        else got == expected
    )


def test_fixed_values_and_later_lines_win() -> None:
    fixed, space = split_overrides(["a=choice(1,2)", "b=3", "c=interval(0,1)", "a=5", "+d=x"], PARSER)
    assert fixed == ["b=3", "a=5", "+d=x"]
    assert list(space) == ["c"]


def test_hydra_settings_cannot_be_swept() -> None:
    with pytest.raises(ValueError, match="Hydra's own settings"):
        split_overrides(["hydra.job.name=choice(a,b)"], PARSER)
