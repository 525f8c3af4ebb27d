"""The operations layer on its own: bounded agency labels, hooks, log fields and redaction."""

from __future__ import annotations

import json
import logging

import pytest

from fvs.observability import hooks
from fvs.observability.context import close_call, note_agency, note_request_id, open_call
from fvs.observability.logs import CallFields, JsonFormatter, TextFormatter, redact
from fvs.observability.metrics import AgencyLabels, Metrics, split_address
from tests.conftest import CITIZEN_A


def test_agency_labels_are_capped() -> None:
    labels = AgencyLabels(2)
    assert [labels(a) for a in ("BANK1", "BANK2", "BANK3", "BANK1", "")] == [
        "BANK1",
        "BANK2",
        "other",
        "BANK1",
        "none",
    ]


def test_calls_from_many_agencies_keep_the_label_set_bounded() -> None:
    metrics = Metrics(max_agencies=5)
    call, token = open_call("Verify")
    try:
        for k in range(300):
            note_agency(f"AG{k:03d}")
            metrics.call_finished(call, 0.01)
    finally:
        close_call(token)
    text = metrics.text().decode()
    agencies = {
        line.split('agency="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("fvs_calls_total{")
    }
    assert agencies == {"AG000", "AG001", "AG002", "AG003", "AG004", "other"}


def test_split_address() -> None:
    assert split_address("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert split_address("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError):
        split_address("localhost")


class Recorder:
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.health_reports: list[tuple[str, bool]] = []

    def stage(self, name: str, seconds: float) -> None:
        assert seconds >= 0
        self.stages.append(name)

    def batch(self, size: int) -> None: ...

    def admission_wait(self, seconds: float) -> None: ...

    def health(self, component: str, ok: bool) -> None:
        self.health_reports.append((component, ok))


def test_hooks_reach_installed_sinks_only_while_installed() -> None:
    recorder = Recorder()
    hooks.stage("decode", 0.001)  # no sink: nothing happens
    hooks.install(recorder)
    try:
        with pytest.raises(RuntimeError), hooks.timed("store"):
            raise RuntimeError("a failing store call is timed too")
        hooks.stage("decode", 0.001)
        hooks.health("postgresql", False)
    finally:
        hooks.uninstall(recorder)
    hooks.stage("embed", 0.001)
    assert recorder.stages == ["store", "decode"]
    assert recorder.health_reports == [("postgresql", False)]
    assert not hooks.active()


def _format(formatter: logging.Formatter, message: str, *args: object) -> str:
    record = logging.LogRecord("fvs.test", logging.INFO, __file__, 1, message, args, None)
    CallFields().filter(record)
    return formatter.format(record)


def test_log_lines_carry_the_call_and_hide_citizen_ids() -> None:
    _, token = open_call("Verify")
    try:
        note_request_id("req-42")
        note_agency("BANK1")
        line = json.loads(_format(JsonFormatter(), "looked up %s", CITIZEN_A))
        text = _format(TextFormatter(), "looked up %s", CITIZEN_A)
    finally:
        close_call(token)
    assert line["request_id"] == "req-42" and line["agency"] == "BANK1"
    assert line["method"] == "Verify" and line["message"] == "looked up <citizen-id>"
    assert "[req-42 BANK1]" in text and CITIZEN_A not in text
    outside = json.loads(_format(JsonFormatter(), "no call"))
    assert outside["request_id"] == "-" and outside["agency"] == "-"


def test_redact_only_touches_citizen_id_shaped_numbers() -> None:
    assert redact(f"id {CITIZEN_A}.") == "id <citizen-id>."
    assert redact("took 1234567890123456 ns, 12 ms") == "took 1234567890123456 ns, 12 ms"


def test_log_lines_go_to_stderr_as_it_is_when_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler bound to the stderr of configure() time broke a test run: a background
    thread logged after the test's captured stream was closed."""
    import io
    import logging
    import sys

    from fvs.observability.logs import StderrHandler

    handler = StderrHandler()
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    handler.emit(logging.makeLogRecord({"msg": "one"}))
    first.close()  # the stream configure() saw is gone
    monkeypatch.setattr(sys, "stderr", second)
    handler.emit(logging.makeLogRecord({"msg": "two"}))
    assert second.getvalue() == "two\n"
