"""Operations on a real `fvs serve` process: Prometheus metrics, structured logs and the
alert rules and dashboard under deploy/ (README "Operations")."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fvs.api.client import CallFailedError, FvsClient
from fvs.audit.log import read_records
from fvs.audit.trail import audit_path
from fvs.config import Settings
from fvs.observability.hooks import STAGES
from fvs.pipeline.pipeline import FacePipeline
from tests.conftest import CITIZEN_A, CITIZEN_B, UNKNOWN_CITIZEN, WRONG_CHECK_DIGIT, encode, photo
from tests.e2e.conftest import ServerProcess, ServerThread

ROOT = Path(__file__).resolve().parents[2]
CONSENT_REFERENCE = "CONSENT-REF-OPS-7f3a9c"
REQUEST_GENUINE = "ops-genuine-0001"
REQUEST_IMPOSTOR = "ops-impostor-0002"


@dataclass
class Run:
    metrics: str
    logs: list[dict[str, str]]
    raw_logs: str
    audit: list[dict[str, object]]
    calls: int
    refusals: dict[str, int]


def _refused(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except CallFailedError as exc:
        return exc.reason
    raise AssertionError("the call was not refused")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Enrol, verify (genuine, impostor) and seven refusals on a server with metrics and JSON
    logs, then SIGTERM it."""
    data = tmp_path_factory.mktemp("ops") / "data"
    server = ServerProcess(data, metrics=True, log_format="json")
    try:
        server.wait_serving()
        blank = encode(np.full((320, 320, 3), 128, dtype=np.uint8))
        refusals: dict[str, int] = {}
        with FvsClient(server.address) as c:
            c.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
            c.enroll(CITIZEN_B, photo("biden.jpg"), create_if_missing=True)
            genuine = c.verify(
                CITIZEN_A, photo("obama2.jpg"), "KYC", CONSENT_REFERENCE, request_id=REQUEST_GENUINE
            )
            impostor = c.verify(
                CITIZEN_A,
                photo("biden2.jpg"),
                "KYC",
                CONSENT_REFERENCE,
                request_id=REQUEST_IMPOSTOR,
            )
            assert genuine.match_score > impostor.match_score
            c.get_citizen(CITIZEN_B)
            for reason in (
                _refused(lambda: c.verify(CITIZEN_A, photo("obama2.jpg"), "KYC")),
                _refused(
                    lambda: c.verify(UNKNOWN_CITIZEN, photo("obama2.jpg"), "KYC", CONSENT_REFERENCE)
                ),
                _refused(
                    lambda: c.verify(
                        WRONG_CHECK_DIGIT, photo("obama2.jpg"), "KYC", CONSENT_REFERENCE
                    )
                ),
                _refused(lambda: c.verify(CITIZEN_B, b"not an image", "KYC", CONSENT_REFERENCE)),
                _refused(
                    lambda: c.verify(
                        CITIZEN_B, photo("biden2.jpg"), "NO-SUCH-PURPOSE", CONSENT_REFERENCE
                    )
                ),
                _refused(lambda: c.enroll(UNKNOWN_CITIZEN, blank, create_if_missing=True)),
                _refused(lambda: c.get_citizen(UNKNOWN_CITIZEN)),
            ):
                refusals[reason] = refusals.get(reason, 0) + 1
        metrics = _scrape_until(
            f"http://127.0.0.1:{server.metrics_port}/metrics",
            "fvs_calls_total",
            method="GetCitizen",
            code="NOT_FOUND",
        )
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
        raw = server.logs()
        lines = [json.loads(line) for line in raw.splitlines() if line.startswith("{")]
        audit = list(read_records(audit_path(data)))
        yield Run(metrics, lines, raw, audit, calls=5 + 7, refusals=refusals)
    finally:
        server.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for (sample, sample_labels), v in samples(text).items():
        if sample == name and set(labels.items()) <= set(sample_labels):
            total += v
    return total


def test_metrics_count_calls_refusals_and_stages(run: Run) -> None:
    m = run.metrics
    assert value(m, "fvs_calls_total", method="Verify", code="OK", agency="DEV") == 2
    assert value(m, "fvs_calls_total", method="Enroll", code="OK") == 2
    assert value(m, "fvs_calls_total") == run.calls
    assert run.refusals == {
        "CONSENT_REQUIRED": 1,
        "CITIZEN_NOT_FOUND": 2,
        "INVALID_CITIZEN_ID": 1,
        "IMAGE_UNDECODABLE": 1,
        "UNKNOWN_PURPOSE": 1,
        "NO_FACE": 1,
    }
    for reason, count in run.refusals.items():
        assert value(m, "fvs_refusals_total", reason=reason) == count, reason
    assert value(m, "fvs_calls_total", code="NOT_FOUND", reason="CITIZEN_NOT_FOUND") == 2
    assert value(m, "fvs_call_duration_seconds_count", method="Verify") == 7
    for stage in STAGES:  # every stage of the pipeline, the gate, the audit and the store ran
        assert value(m, "fvs_stage_duration_seconds_count", stage=stage) > 0, stage
    assert value(m, "fvs_embed_batch_size_count") >= 4  # 2 enrolments + 2 verifications
    assert value(m, "fvs_admission_wait_seconds_count") > 0
    assert value(m, "fvs_calls_in_flight") == 0 and value(m, "fvs_admission_pending") == 0
    assert value(m, "fvs_template_index_size") == 2
    assert value(m, "fvs_model_info", pack="buffalo_sc") == 1
    for component in ("model", "store", "audit"):
        assert value(m, "fvs_component_healthy", component=component) == 1
    assert value(m, "fvs_serving") == 1
    assert value(m, "process_resident_memory_bytes") > 0 and value(m, "fvs_process_threads") > 0
    for secret in (CITIZEN_A, CITIZEN_B, UNKNOWN_CITIZEN, WRONG_CHECK_DIGIT, CONSENT_REFERENCE):
        assert secret not in m


def test_logs_carry_request_and_agency_and_never_ids_or_consent(run: Run) -> None:
    access = [line for line in run.logs if line["logger"] == "fvs.access_log"]
    assert len(access) == run.calls  # one access line per call
    assert all(line["request_id"] not in ("", "-") for line in access)
    ids = {line["request_id"] for line in access}
    assert {REQUEST_GENUINE, REQUEST_IMPOSTOR} <= ids and len(ids) == run.calls
    # the request id links a log line to the call's audit record
    audited = {str(r["request_id"]) for r in run.audit}
    assert {line["request_id"] for line in access if "OK" in line["message"]} <= audited
    authorized = [line for line in access if "INVALID_CITIZEN_ID" not in line["message"]]
    assert {line["agency"] for line in authorized} == {"DEV"}
    refused = [line for line in run.logs if " refused: " in line["message"]]
    assert len(refused) == 7 and all(line["request_id"] != "-" for line in refused)
    for secret in (CITIZEN_A, CITIZEN_B, UNKNOWN_CITIZEN, WRONG_CHECK_DIGIT, CONSENT_REFERENCE):
        assert secret not in run.raw_logs, secret
    assert not re.search(r"(-?\d+\.\d+,\s*){16}", run.raw_logs)  # no embedding
    assert "/9j/" not in run.raw_logs and "JFIF" not in run.raw_logs  # no JPEG
    assert any("shutting down" in line["message"] for line in run.logs)


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(?:fvs|process)_[a-z_]+\b", expr))


def _exprs() -> dict[str, list[str]]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/fvs-alerts.yml").read_text())
    dashboard = json.loads((ROOT / "deploy/grafana/fvs-dashboard.json").read_text())
    return {
        "rules": [r["expr"] for g in rules["groups"] for r in g["rules"]],
        "dashboard": [t["expr"] for p in dashboard["panels"] for t in p["targets"]],
    }


def test_alert_rules_and_dashboard_use_only_exported_metrics(run: Run) -> None:
    exported = {name for name, _ in samples(run.metrics)}
    rules = yaml.safe_load((ROOT / "deploy/prometheus/fvs-alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "FvsServerErrorRatioHigh",
        "FvsVerifyLatencyP99High",
        "FvsAuditUnavailable",
        "FvsOverloaded",
    } <= alerts
    for where, exprs in _exprs().items():
        assert exprs, where
        for expr in exprs:
            names = _metric_names(expr)
            assert names, expr
            assert names <= exported, f"{where}: {names - exported} not exported ({expr})"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_alert_rules_pass_promtool() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(ROOT / "deploy/prometheus/fvs-alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_failing_audit_trail_shows_as_unhealthy(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    settings = settings_factory()
    settings.observability.metrics_address = "127.0.0.1:0"
    running = ServerThread(settings, lambda: pipeline)
    try:
        running.loaded.result(timeout=60)
        assert running.server is not None
        url = f"http://127.0.0.1:{running.server.metrics_port}/metrics"
        with FvsClient(running.address) as c:
            c.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
            before = _scrape(url)
            running.parts.gate.audit.close()  # every append now fails: AUDIT_UNAVAILABLE
            reason = _refused(
                lambda: c.verify(CITIZEN_A, photo("obama2.jpg"), "KYC", CONSENT_REFERENCE)
            )
        after = _scrape_until(url, "fvs_refusals_total", reason="AUDIT_UNAVAILABLE")
    finally:
        running.stop()
    assert reason == "AUDIT_UNAVAILABLE"
    assert value(before, "fvs_component_healthy", component="audit") == 1
    assert value(after, "fvs_component_healthy", component="audit") == 0
    assert value(after, "fvs_refusals_total", reason="AUDIT_UNAVAILABLE") == 1
    assert value(after, "fvs_calls_total", code="UNAVAILABLE", reason="AUDIT_UNAVAILABLE") == 1


def _scrape(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _scrape_until(url: str, name: str, **labels: str) -> str:
    """The metrics once ``name`` counts something: a call is counted just after its answer
    leaves, so the scrape that follows the last answer may be a moment early."""
    deadline = time.monotonic() + 5
    text = _scrape(url)
    while value(text, name, **labels) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        text = _scrape(url)
    return text
