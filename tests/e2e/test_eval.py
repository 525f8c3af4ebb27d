"""`fvs eval` and `fvs calibrate` end to end on a tiny dataset made from the test photos, with
the bad input the issue names: unreadable files, faceless images, malformed pairs lines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import DATA, encode
from tests.e2e.test_cli import fvs


def make_dataset(root: Path) -> Path:
    images = root / "images"
    for person, files in {
        "Obama": ["obama.jpg", "obama2.jpg"],
        "Biden": ["biden.jpg", "biden2.jpg"],
    }.items():
        (images / person).mkdir(parents=True)
        for k, name in enumerate(files, start=1):
            shutil.copy(DATA / name, images / person / f"{person}_{k:04d}.jpg")
    (images / "Nobody").mkdir()
    (images / "Nobody" / "Nobody_0001.jpg").write_bytes(encode(np.zeros((120, 120, 3), np.uint8)))
    (images / "Broken").mkdir()
    (images / "Broken" / "Broken_0001.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    pairs = root / "pairs.txt"
    pairs.write_text(
        "3\nObama\t1\t2\nBiden\t1\t2\nNobody\t1\t2\n"
        "Obama\t1\tBiden\t1\nObama\t2\tBiden\t2\nthis line is wrong\n"
    )
    return root


def test_eval_reports_everything_and_drops_nothing_silently(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    out = tmp_path / "report"
    result = fvs(
        "eval",
        str(root / "images"),
        "--pairs",
        str(root / "pairs.txt"),
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    fta = report["failure_to_acquire"]
    assert fta["images"] == 6
    assert fta["by_reason"] == {"IMAGE_UNDECODABLE": 1, "NO_FACE": 1}
    listed = report["listed_pairs"]
    assert listed["pairs"] == 4  # 5 well-formed lines, one names a missing image
    assert len(listed["problems"]) == 2
    assert any("missing image" in p for p in listed["problems"])
    assert any("malformed" in p for p in listed["problems"])
    assert listed["accuracy"]["mean"] == 1.0
    generated = report["generated_pairs"]
    assert generated["genuine_pairs"] == 2  # Obama 1-2, Biden 1-2 (single images make none)
    assert generated["impostor_pairs"] == 13  # 15 pairs of 6 images, minus the 2 genuine
    assert generated["pairs_not_scored_fta"] == {"genuine": 0, "impostor": 9}
    assert generated["genuine_scored"] == 2 and generated["impostor_scored"] == 4
    assert generated["auc"] == 1.0
    for plot in ("roc.png", "det.png", "scores.png"):
        assert (out / plot).stat().st_size > 1000
    # a second run reads every embedding from the cache and reports the same
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "fvs",
            "--log-level",
            "INFO",
            "eval",
            str(root / "images"),
            "--out",
            str(tmp_path / "again"),
            "--cache",
            str(tmp_path / "cache"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert "embedded 6 images (6 from cache" in again.stderr
    second = json.loads((tmp_path / "again" / "report.json").read_text())
    assert second["generated_pairs"]["auc"] == generated["auc"]


def test_calibrate_needs_enough_impostors(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    result = fvs(
        "calibrate",
        str(root / "images"),
        "--out",
        str(tmp_path / "c.json"),
        "--cache",
        str(tmp_path / "cache"),
        "--no-progress",
    )
    assert result.returncode == 2
    assert "at least 100000" in result.stderr
    assert not (tmp_path / "c.json").exists()


def test_eval_dedup_on_the_test_photos(tmp_path: Path) -> None:
    """`fvs eval-dedup`: 4 acquired photos of 2 people, 2 not acquired; with 1,000 isotropic
    distractors too. Each person's second photo is a mated search the bar must catch."""
    root = make_dataset(tmp_path)
    out = tmp_path / "dedup"
    result = fvs(
        "eval-dedup",
        str(root / "images"),
        "--distractors",
        "0",
        "1000",
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "dedup_report.json").read_text())
    assert (out / "dedup_det.png").stat().st_size > 0
    assert report["photos"] == 4 and report["people"] == 2
    assert len(report["not_acquired"]) == 2
    assert [r["distractors"] for r in report["runs"]] == [0, 1000]
    for run in report["runs"]:
        at = {p["max_fmr"]: p for p in run["at"]}
        assert at[1e-6]["mated_searches"] == 2 and at[1e-6]["non_mated_searches"] == 2
        assert at[1e-6]["fnir"] == 0.0 and at[1e-6]["fpir"] == 0.0
    assert "enrolled_1e7" in report["expected_fpir"]["1e-06"]
    bad = fvs("eval-dedup", str(root / "images"), "--candidates", "0", "--no-progress")
    assert bad.returncode != 0 and "--candidates" in bad.stderr
