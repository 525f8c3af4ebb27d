"""The tester console's words and helpers (no server, no browser)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fvs.citizen_id import is_valid
from fvs.config import QualitySettings
from fvs.console.app import ConsoleConfig, synthetic_citizen_id
from fvs.console.explain import REASONS, explain, fmr_in_words, quality_rows
from fvs.errors import ErrorCode


def test_every_reason_has_a_plain_explanation() -> None:
    assert set(REASONS) == {code.value for code in ErrorCode}
    assert explain("UNAVAILABLE", "").startswith("The console could not reach")
    assert explain("ABORTED", "") == "The server refused the call with ABORTED."


@pytest.mark.parametrize(
    ("fmr", "score", "words"),
    [
        (1e-5, 100.0, "at most about 1 in 100,000 different people score this high"),
        (1e-3, 60.0, "about 1 in 1,000 different people score this high"),
        (3.16e-4, 70.0, "about 1 in 3,200 different people score this high"),
        (0.58, 4.8, "most different people score this high"),
        (0.25, 12.0, "about 1 in 4 different people score this high"),
        (None, 55.0, "no false match rate"),
    ],
)
def test_false_match_rate_in_words(fmr: float | None, score: float, words: str) -> None:
    assert fmr_in_words(fmr, score).startswith(words)


def test_generated_citizen_ids_are_valid() -> None:
    ids = {synthetic_citizen_id() for _ in range(200)}
    assert len(ids) == 200 and all(is_valid(i) and i[0] in "12345678" for i in ids)


def test_quality_rows_compare_with_the_minimums() -> None:
    quality = SimpleNamespace(
        inter_eye_px=20.0,
        sharpness=5.0,  # below the verify minimum of 10
        exposure=240.0,  # above the verify maximum of 235
        contrast=30.0,
        yaw_deg=-50.0,
        pitch_deg=10.0,
        roll_deg=3.0,
        detection_score=0.9,
        overall=40.0,
    )
    rows = {r.component: r for r in quality_rows(quality, QualitySettings().verify)}
    assert rows["sharpness"].passed is False and rows["sharpness"].minimum == ">= 10"
    assert rows["exposure (mean grey)"].passed is False
    assert rows["yaw (deg)"].passed is True  # |yaw| <= 90 for verify
    assert rows["roll (deg)"].passed is None
    enrol = {r.component: r for r in quality_rows(quality, QualitySettings().enroll)}
    assert enrol["yaw (deg)"].passed is False  # |yaw| <= 45 for enrolment
    assert enrol["face size (eye distance, px)"].passed is False  # 24 px for enrolment


def test_body_limit_fits_two_photos_at_the_image_limit() -> None:
    config = ConsoleConfig("x:1", "", frozenset(), max_image_bytes=3 * 1000)
    assert config.max_body_bytes >= 2 * 4000


def test_the_console_accepts_only_its_own_host_names() -> None:
    from fvs.cli.console import _allowed_hosts

    hosts = _allowed_hosts("127.0.0.1", 8080, ["console.lab"])
    assert {"127.0.0.1:8080", "localhost:8080", "[::1]:8080", "console.lab:8080"} <= hosts
    assert "evil.example:8080" not in hosts and "127.0.0.1:9999" not in hosts


def test_tls_dir_needs_the_ca_and_exactly_one_certificate(tmp_path: Path) -> None:
    from fvs.cli import parser
    from fvs.cli.console import _tls_files

    for name in ("ca.pem", "tester.pem", "tester.key"):
        (tmp_path / name).write_text("x")
    args = parser().parse_args(["console", "--tls-dir", str(tmp_path)])
    assert _tls_files(args) == (
        tmp_path / "ca.pem",
        tmp_path / "tester.pem",
        tmp_path / "tester.key",
    )
    (tmp_path / "other.pem").write_text("x")
    (tmp_path / "other.key").write_text("x")
    with pytest.raises(SystemExit, match=r"exactly one NAME\.pem"):
        _tls_files(args)
    with pytest.raises(SystemExit, match="exactly one of"):
        _tls_files(parser().parse_args(["console", "--insecure", "--tls-dir", str(tmp_path)]))


def test_the_console_refuses_a_public_address_unless_told() -> None:
    from fvs.cli import main

    with pytest.raises(SystemExit, match="not a loopback address"):
        main(["console", "--insecure", "--listen", "0.0.0.0:0"])
