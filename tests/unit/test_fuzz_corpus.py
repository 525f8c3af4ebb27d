"""Replays every fuzz target's corpus (seeds and inputs a fuzz run once failed on) in CI:
scripts/fuzz.sh explores, this keeps what it found fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus"
CASES = sorted(
    (target, path)
    for target in TARGETS
    for path in (CORPUS / target).iterdir()
    if (CORPUS / target).is_dir()
)


def test_every_target_has_a_corpus() -> None:
    assert {target for target, _ in CASES} == set(TARGETS)


@pytest.mark.parametrize(("target", "path"), CASES, ids=lambda v: getattr(v, "name", v))
def test_replay(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())
