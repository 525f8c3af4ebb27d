"""`fvs eval --groups` and `fvs calibrate --check` end to end, with the real model on the test
photos and the shipped calibration: identity folders with an identity->group file, and a
labels CSV of single photos (impostor pairs only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import DATA
from tests.e2e.test_cli import fvs


def identity_dataset(root: Path) -> tuple[Path, Path]:
    images = root / "images"
    for person, files in {
        "Obama": ["obama.jpg", "obama2.jpg"],
        "Biden": ["biden.jpg", "biden2.jpg"],
    }.items():
        (images / person).mkdir(parents=True)
        for k, name in enumerate(files, start=1):
            shutil.copy(DATA / name, images / person / f"{person}_{k:04d}.jpg")
    groups = root / "groups.tsv"
    groups.write_text("# identity\tgroup\nObama\tg1\n")
    return images, groups


def test_group_report_per_group_and_pair_of_groups(tmp_path: Path) -> None:
    images, groups = identity_dataset(tmp_path)
    out = tmp_path / "report"
    cache = tmp_path / "cache"
    result = fvs(
        "eval",
        str(images),
        "--groups",
        str(groups),
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    section = report["groups"]
    assert section["calibration"].startswith("fmr-")
    assert section["groups"] == ["g1", "other"]  # Biden is not listed: the default group
    assert section["images_per_group"] == {"g1": 2, "other": 2}
    cells = {c["cell"]: c for c in section["cells"]}
    # within a group there are only genuine pairs here, so only the cross cell has impostors
    assert set(cells) == {"g1 x other"}
    cross = cells["g1 x other"]
    assert cross["impostor_pairs"] == 4 and cross["genuine_pairs"] == 0
    anchors = {a["percent"]: a for a in cross["anchors"]}
    assert set(anchors) == {20.0, 40.0, 60.0, 80.0, 100.0}
    assert anchors[40.0]["claimed_fmr"] == pytest.approx(1e-2)
    # two different presidents never reach the 40 % anchor (FMR 1e-2)
    assert anchors[40.0]["accepted"] == 0 and anchors[40.0]["measured_fmr"] == 0
    lo, hi = anchors[40.0]["fmr_ci"]
    assert lo == 0 and 0.4 < hi < 0.6  # Wilson interval of 0 in 4
    whole = section["all"]
    assert whole["impostor_pairs"] == 4 and whole["genuine_pairs"] == 2
    assert (
        anchors[80.0]["tar"] is None and whole["anchors"][3]["tar"] == 1.0
    )  # both genuine pass 80 %
    assert (out / "differential.png").stat().st_size > 1000
    assert "g1 x other" in result.stdout and "max/min FMR" in result.stdout

    # the same table for a calibration given by file, without re-embedding
    check = fvs(
        "calibrate",
        str(images),
        "--check",
        "--groups",
        str(groups),
        "--calibration",
        str(Path(__file__).resolve().parents[2] / "models/buffalo_sc.calibration.json"),
        "--cache",
        str(cache),
        "--no-progress",
        "--report",
        str(tmp_path / "check.json"),
    )
    assert check.returncode == 0, check.stderr
    again = json.loads((tmp_path / "check.json").read_text())
    assert again["cells"][0]["anchors"] == cross["anchors"]


def test_labels_csv_of_single_photos(tmp_path: Path) -> None:
    root = tmp_path / "chips"
    (root / "images").mkdir(parents=True)
    rows = ["file,race,age,gender"]
    for name, race in (
        ("obama.jpg", "A"),
        ("obama2.jpg", "A"),
        ("biden.jpg", "B"),
        ("biden2.jpg", "B"),
    ):
        shutil.copy(DATA / name, root / "images" / name)
        rows.append(f"images/{name},{race},60,Male")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "report"
    result = fvs(
        "eval",
        str(root),
        "--groups",
        str(root / "labels.csv"),
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["failure_to_acquire"]["images"] == 4
    cells = {c["cell"]: c for c in report["groups"]["cells"]}
    # every photo is its own identity: all 6 pairs are impostor pairs, none genuine
    assert {n: c["impostor_pairs"] for n, c in cells.items()} == {"A": 1, "A x B": 4, "B": 1}
    assert all(c["genuine_pairs"] == 0 for c in cells.values())
    # the two photos of one man, labelled as two people, pass the 80 % anchor: the near-
    # duplicate problem of unlabelled chips the report must show, not hide
    assert cells["A"]["anchors"][3]["accepted"] == 1


def test_bad_groups_file_is_a_usage_error(tmp_path: Path) -> None:
    images, _ = identity_dataset(tmp_path)
    bad = tmp_path / "bad.tsv"
    bad.write_text("Obama only one column\n")
    result = fvs(
        "eval", str(images), "--groups", str(bad), "--cache", str(tmp_path / "c"), "--no-progress"
    )
    assert result.returncode == 2 and "expected identity<TAB>group" in result.stderr
    result = fvs("eval", str(images), "--groups", str(tmp_path / "missing.tsv"), "--no-progress")
    assert result.returncode == 2 and "is not a file" in result.stderr
    result = fvs(
        "calibrate",
        str(images),
        "--region",
        "g1",
        "--out",
        str(tmp_path / "c.json"),
        "--no-progress",
    )
    assert result.returncode == 2 and "--region needs --groups" in result.stderr
