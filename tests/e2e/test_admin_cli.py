"""The operator's flow through the real `fvs` entry point: pki, agency, permit, system, a
gateway verifying with its certificate against `fvs serve --tls-dir`, audit and usage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import CITIZEN_A, DATA
from tests.e2e.test_cli import free_port, fvs


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def wait_serving(address: str, tls: list[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if fvs("health", "--server", address, "--timeout", "2", *tls).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError("server did not become SERVING")


def test_operator_flow(tmp_path: Path) -> None:
    pki, data = tmp_path / "pki", tmp_path / "data"
    d = ("--data-dir", str(data))
    ok(fvs("pki", "init", "--dir", str(pki), "--org", "Test DOPA", *d))
    serving, clients = pki / "server", pki / "clients"
    for name in (
        "ca/ca.pem",
        "ca/ca.key",
        "server/server.pem",
        "server/server.key",
        "server/ca.pem",
        "server/receipt.key",
        "server/health.pem",
        "server/health.key",
        "clients/admin.pem",
        "clients/admin.key",
        "receipt-public.pem",
    ):
        assert (pki / name).exists(), name
    assert (pki / "ca/ca.key").stat().st_mode & 0o777 == 0o600
    assert (serving / "receipt.key").stat().st_mode & 0o777 == 0o600
    # the serving folder holds no CA key (and the server checks that, see test_security)
    assert not any(p.name == "ca.key" for p in serving.iterdir())
    ok(
        fvs(
            "admin",
            "agency",
            "add",
            *d,
            "--code",
            "BANK-A",
            "--kind",
            "PRIVATE",
            "--name",
            "Bank A PCL",
            "--registration",
            "0107536000001",
            "--mission",
            "retail banking",
            "--supervisor",
            "Somchai Jaidee=dpo@bank-a.example",
        )
    )
    ok(fvs("admin", "purpose", "add", *d, "--code", "LOAN", "--description", "loan application"))
    granted = ok(
        fvs(
            "admin",
            "permit",
            "grant",
            *d,
            "--agency",
            "BANK-A",
            "--purpose",
            "KYC",
            "--purpose",
            "LOAN",
            "--days",
            "365",
        )
    )
    permit_id = granted.split()[1]
    ok(
        fvs(
            "admin",
            "system",
            "add",
            *d,
            "--agency",
            "BANK-A",
            "--name",
            "gateway-1",
            "--pki-dir",
            str(pki),
            "--out",
            str(tmp_path / "bank-a"),
        )
    )
    shown = json.loads(ok(fvs("admin", "agency", "show", *d, "BANK-A")))
    assert shown["agency"]["supervisors"] == [
        {"name": "Somchai Jaidee", "contact": "dpo@bank-a.example"}
    ]
    assert shown["permits"][0]["purposes"] == ["KYC", "LOAN"]
    assert shown["systems"][0]["name"] == "gateway-1"
    unknown = fvs(
        "admin", "permit", "grant", *d, "--agency", "NOPE", "--purpose", "KYC", "--days", "1"
    )
    assert unknown.returncode == 1
    assert "AGENCY_NOT_FOUND" in unknown.stderr

    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fvs", "serve", "--tls-dir", str(serving), "--address", address, *d],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "FVS_MODEL__PROVIDERS": "cpu"},
    )
    admin_tls = [
        "--ca",
        str(clients / "ca.pem"),
        "--cert",
        str(clients / "admin.pem"),
        "--key",
        str(clients / "admin.key"),
    ]
    gw_tls = [
        "--ca",
        str(clients / "ca.pem"),
        "--cert",
        str(tmp_path / "bank-a/gateway-1.pem"),
        "--key",
        str(tmp_path / "bank-a/gateway-1.key"),
    ]
    health_tls = [
        "--ca",
        str(serving / "ca.pem"),
        "--cert",
        str(serving / "health.pem"),
        "--key",
        str(serving / "health.key"),
    ]
    try:
        wait_serving(address, health_tls)
        probe = fvs("registry", "show", "--server", address, *health_tls, CITIZEN_A)
        assert "SYSTEM_NOT_REGISTERED" in probe.stderr  # the probe certificate serves Health only
        ok(
            fvs(
                "enroll",
                "--server",
                address,
                *admin_tls,
                "--citizen-id",
                CITIZEN_A,
                "--create",
                str(DATA / "obama.jpg"),
            )
        )
        verify = [
            "verify",
            "--server",
            address,
            *gw_tls,
            "--citizen-id",
            CITIZEN_A,
            "--purpose",
            "KYC",
            "--consent-ref",
            "FORM-2026-000123",
            str(DATA / "obama2.jpg"),
        ]
        assert "match score" in ok(fvs(*verify))
        ok(fvs("admin", "permit", "suspend", *d, "--permit", permit_id, "--reason", "overdue"))
        suspended = fvs(*verify)
        assert suspended.returncode == 1
        assert "PERMIT_SUSPENDED" in suspended.stderr
        ok(fvs("admin", "permit", "resume", *d, "--permit", permit_id, "--reason", "settled"))
        ok(fvs(*verify))
        ok(fvs("admin", "system", "disable", *d, "--agency", "BANK-A", "--name", "gateway-1"))
        disabled = fvs(*verify)
        assert "SYSTEM_DISABLED" in disabled.stderr
        ok(fvs("admin", "system", "enable", *d, "--agency", "BANK-A", "--name", "gateway-1"))
        ok(fvs("admin", "conditions", "set", *d, "--version", "2026-12", "--summary", "fees"))
        ok(fvs(*verify))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)

    usage = json.loads(
        ok(
            fvs(
                "admin",
                "usage",
                *d,
                "--agency",
                "BANK-A",
                "--month",
                time.strftime("%Y-%m", time.gmtime()),
                "--json",
            )
        )
    )
    by_outcome: dict[str, int] = {}
    for row in usage:
        assert row["system"] == "BANK-A/gateway-1"
        by_outcome[row["outcome"]] = by_outcome.get(row["outcome"], 0) + row["calls"]
    assert by_outcome == {"OK": 3, "REFUSED": 2}

    assert "intact" in ok(fvs("audit", "verify", *d))
    exported = ok(fvs("audit", "export", *d, "--agency", "BANK-A"))
    records = [json.loads(line) for line in exported.splitlines()]
    assert len(records) == 5 and {r["agency"] for r in records} == {"BANK-A"}
    assert records[-1]["conditions"] == "2026-12"
    csv_out = tmp_path / "bank-a.csv"
    ok(fvs("audit", "export", *d, "--agency", "BANK-A", "--format", "csv", "--out", str(csv_out)))
    assert len(csv_out.read_text().splitlines()) == 6

    log = data / "audit" / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    edited = json.loads(lines[5])
    edited["outcome"] = "OK" if edited["outcome"] != "OK" else "REFUSED"
    lines[5] = json.dumps(edited) + "\n"
    log.write_text("".join(lines))
    broken = fvs("audit", "verify", *d)
    assert broken.returncode == 1
    assert "line 6" in broken.stderr
