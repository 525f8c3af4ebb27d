"""Seconds-long runs proving the benchmarks still run and write their JSON (not timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA

ROOT = Path(__file__).resolve().parents[2]


def bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_matching_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    bench("matching.py", "--sizes", "2000", "--calls", "300", "--out", str(out))
    result = json.loads(out.read_text())["results"][0]
    assert result["templates"] == 2000
    assert result["index"]["median_us"] > 0 and result["raw_dot"]["median_us"] > 0
    assert result["median_ratio"] > 0


def test_pipeline_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    bench(
        "pipeline.py",
        "--photos",
        str(DATA),
        "--small",
        str(tmp_path / "none"),
        "--limit",
        "2",
        "--reps",
        "1",
        "--seconds",
        "0.5",
        "--threads",
        "1",
        "2",
        "--out",
        str(out),
    )
    payload = json.loads(out.read_text())
    # same faces; the detector sizes differ (640 + 160 vs 640 only), so not bit-identical
    assert payload["large_photos"]["embedding_cosine_ours_vs_naive_min"] > 0.9
    assert payload["detector_sizing"]["sizes_used"] == [[256, 256]]
    assert len(payload["throughput"]) == 2


def test_service_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    bench(
        "service.py",
        "--levels",
        "1",
        "2",
        "--seconds",
        "1",
        "--overload",
        "2",
        "--overload-seconds",
        "2",
        "--rounds",
        "1",
        "--pair-seconds",
        "1",
        "--pair-calls",
        "4",
        "--out",
        str(out),
    )
    payload = json.loads(out.read_text())
    assert [r["concurrency"] for r in payload["levels"]] == [1, 2]
    assert payload["overload"]["lost"] == 0
    assert Path(payload["plot"]).exists()
    paired = payload["paired"]
    assert paired["c1"]["calls"] == 4 and paired["c1"]["ratio"] > 0
    assert len(paired["throughput"]["rounds"]) == len(paired["overload"]["rounds"]) == 1
    assert paired["overload"]["lost"] == 0
    assert payload["ratios"]["paired_c8_throughput_over_best_in_process"] > 0


def test_overload_cpu_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "o.json"
    bench(
        "overload_cpu.py", "--seconds", "1.5", "--rounds", "1", "--factor", "3", "--level", "2",
        "--out", str(out),
    )  # fmt: skip
    rounds = json.loads(out.read_text())["rounds"]
    assert len(rounds) == 1
    closed, over = rounds[0]["closed"], rounds[0]["open"]
    assert closed["ok"] > 0 and closed["server_cores"] > 0
    assert over["calls"] > closed["calls"] and over["lost"] == 0
    assert over["ok"] + over["refused"] == over["calls"]
    assert 0 < over["event_loop_cores"] <= over["server_cores"]


def test_audit_flush_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "f.json"
    bench(
        "audit_flush.py",
        "--dir",
        str(tmp_path),
        "--records",
        "20",
        "--rounds",
        "1",
        "--out",
        str(out),
    )
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"fsync", "fdatasync", "o_dsync", "preallocated", "log_only", "none"}
    assert results["fsync"]["p50_over_fsync"] == 1.0
    assert all(r["p50_ms"] > 0 for r in results.values())


def test_processes_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    bench(
        "processes.py",
        "--levels",
        "2",
        "--seconds",
        "1",
        "--warm-seconds",
        "0.5",
        "--out",
        str(out),
    )
    payload = json.loads(out.read_text())
    for name in ("processes_1", "processes_2"):
        (level,) = payload["results"][name]
        assert level["concurrency"] == 2 and level["ok"] > 0 and level["errors"] == 0


def test_soak_smoke(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    bench("soak.py", "--seconds", "8", "--rate", "4", "--sample-s", "1", "--out", str(out))
    payload = json.loads(out.read_text())
    summary = payload["summary"]
    assert summary["calls"] >= 24 and summary["lost"] == 0 and summary["unexpected"] == 0
    assert set(summary["by_kind"]) == {"genuine", "impostor", "refused"}
    assert {"CONSENT_REQUIRED", "CITIZEN_NOT_FOUND", "IMAGE_UNDECODABLE"} <= set(
        summary["by_kind"]["refused"]
    )
    assert len(payload["samples"]) >= 5
    assert all(s["rss_mb"] > 0 and s["fds"] > 0 and s["threads"] > 0 for s in payload["samples"])
    assert payload["server_exit_status"] == 0 and Path(payload["plot"]).exists()


def test_score_norm_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    bench("score_norm.py", "--calls", "300", "--out", str(out))
    payload = json.loads(out.read_text())
    assert payload["calibration"].startswith("fmr-region-knn-v1/")
    assert payload["cohort_templates"] == 464 and payload["k"] == 10
    assert payload["plain_table"]["median_us"] > 0 and payload["region_keyed"]["median_us"] > 0
    assert payload["median_ratio"] > 1  # the blend costs more than one table lookup
