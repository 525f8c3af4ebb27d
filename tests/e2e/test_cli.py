"""The `fvs` command through its real entry point (a subprocess), against real servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fvs import citizen_id
from tests.conftest import DATA, UNKNOWN_CITIZEN, WRONG_CHECK_DIGIT
from tests.e2e.conftest import ServerThread

CLI_CITIZEN = citizen_id.complete("570010000001")
CONSENT = ("--purpose", "KYC", "--consent-ref", "CONSENT-CLI-1")


def fvs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fvs", "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_enrol_and_verify_in_one_line_each(server: ServerThread) -> None:
    s = ("--server", server.address)
    enrolled = fvs("enroll", *s, "--citizen-id", CLI_CITIZEN, "--create", str(DATA / "obama.jpg"))
    assert enrolled.returncode == 0, enrolled.stderr
    assert f"enrolled {CLI_CITIZEN}" in enrolled.stdout
    same = fvs("verify", *s, *CONSENT, "--citizen-id", CLI_CITIZEN, str(DATA / "obama2.jpg"))
    assert same.returncode == 0, same.stderr
    assert "match score" in same.stdout and "face box" in same.stdout
    cosine = float(same.stdout.split("cosine ")[1].split()[0])
    assert cosine > 0.5
    other = fvs(
        "verify", *s, *CONSENT, "--json", "--citizen-id", CLI_CITIZEN, str(DATA / "biden.jpg")
    )
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["similarity"] < 0.3
    assert fvs("health", *s).stdout.strip() == "SERVING"
    shown = fvs("registry", "show", *s, CLI_CITIZEN)
    assert json.loads(shown.stdout)["template_version"] >= 1


def test_refusals_exit_non_zero_with_the_reason(server: ServerThread, tmp_path: Path) -> None:
    s = ("--server", server.address)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((DATA / "obama.jpg").read_bytes()[:4000])
    for cid, path, reason in [
        (CLI_CITIZEN, corrupt, "IMAGE_UNDECODABLE"),
        (WRONG_CHECK_DIGIT, DATA / "obama2.jpg", "INVALID_CITIZEN_ID"),
        (UNKNOWN_CITIZEN, DATA / "obama2.jpg", "CITIZEN_NOT_FOUND"),
    ]:
        result = fvs("verify", *s, *CONSENT, "--citizen-id", cid, str(path))
        assert result.returncode == 1, result
        assert reason in result.stderr
    missing = fvs("verify", *s, *CONSENT, "--citizen-id", CLI_CITIZEN, str(tmp_path / "nope.jpg"))
    assert missing.returncode != 0
    assert "cannot read" in missing.stderr


def test_unreachable_server_is_reported() -> None:
    result = fvs(
        "verify",
        *CONSENT,
        "--server",
        "127.0.0.1:1",
        "--timeout",
        "2",
        "--citizen-id",
        CLI_CITIZEN,
        str(DATA / "obama2.jpg"),
    )
    assert result.returncode == 3
    assert "UNAVAILABLE" in result.stderr


def test_registry_seed_is_deterministic(tmp_path: Path) -> None:
    a = fvs(
        "registry",
        "seed",
        "--count",
        "300",
        "--seed",
        "4",
        "--with-templates",
        "--data-dir",
        str(tmp_path / "a"),
    )
    b = fvs("registry", "seed", "--count", "300", "--seed", "4", "--data-dir", str(tmp_path / "b"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert "seeded 300 new synthetic citizens" in a.stdout
    import sqlite3

    rows = []
    for sub in ("a", "b"):
        conn = sqlite3.connect(tmp_path / sub / "registry.sqlite3")
        rows.append(conn.execute("SELECT * FROM citizens ORDER BY citizen_id").fetchall())
        templates = conn.execute("SELECT count(*) FROM face_templates").fetchone()[0]
        conn.close()
        assert templates == (300 if sub == "a" else 0)
    strip = [[r[:-2] for r in table] for table in rows]  # last_version, created_at differ
    assert strip[0] == strip[1]
    assert all(citizen_id.is_valid(r[0]) for r in rows[0])


def test_model_show_verifies_the_default_pack() -> None:
    result = fvs("model", "show")
    assert result.returncode == 0, result.stderr
    assert "buffalo_sc@9cc6e4a75f0e" in result.stdout
    assert "non-commercial" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_reports_serving_and_stops_on_sigterm(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "FVS_MODEL__PROVIDERS": "cpu"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fvs",
            "serve",
            "--insecure",
            "--address",
            address,
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with grpc.insecure_channel(address) as channel:
                    status = (
                        health_pb2_grpc.HealthStub(channel)
                        .Check(health_pb2.HealthCheckRequest(), timeout=2)
                        .status
                    )
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        assert status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "shutting down" in out
        assert (tmp_path / "registry.sqlite3").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_gpu_it_does_not_have(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fvs",
            "serve",
            "--insecure",
            "--address",
            address,
            "--data-dir",
            str(tmp_path),
            "--providers",
            "cuda",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2  # a configuration the machine cannot honour
    assert "CUDAExecutionProvider was requested" in result.stderr
