"""The audit trail over a real mutual-TLS server (issue 10 findings 1 and 2): a 100 KB consent
reference cannot break the trail, and a cut trail is refused, then repaired."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from fvs.access.admin import AdminService
from fvs.access.gate import Gate
from fvs.access.model import Caller, Role
from fvs.access.policy import ConsentRules
from fvs.api.client import CallFailedError, ClientTls, FvsClient
from fvs.audit.log import LOG_FILE, read_records
from fvs.audit.trail import log_dir
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from fvs.pki import Issued, init_pki
from tests.conftest import CITIZEN_A, photo
from tests.e2e.conftest import DevClient, ServerThread
from tests.e2e.test_cli import fvs

OPERATOR = Caller(local_operator="test-operator")


def _client(address: str, ca_pem: bytes, issued: Issued) -> FvsClient:
    assert issued.key_pem is not None
    return FvsClient(address, timeout_s=30, tls=ClientTls(ca_pem, issued.cert_pem, issued.key_pem))


def _verify(client: FvsClient, reference: str) -> object:
    return client.verify(CITIZEN_A, photo("obama2.jpg"), "KYC", reference, dt.datetime.now(dt.UTC))


def test_a_100kb_consent_reference_cannot_break_the_trail(
    tmp_path: Path, settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    pki = tmp_path / "pki"
    settings = settings_factory()
    settings.access.tls_dir = pki / "server"  # the server's folder, without the CA key
    data = settings.store.data_dir
    ca, _ = init_pki(pki, "Test Authority", [])
    gateway, stranger, operator = (
        ca.issue("gateway-1", "BANK-A"),
        ca.issue("stranger", "BANK-A"),  # of the CA, registered nowhere
        ca.issue("fvs-admin", "FVS"),
    )
    admin = AdminService(Gate.open(data, ConsentRules()), ca.pem)
    admin.add_agency(OPERATOR, "BANK-A", "PRIVATE", "Bank A", "0107536000001", "banking", [])
    now = dt.datetime.now(dt.UTC)
    admin.grant_permit(OPERATOR, "BANK-A", ["KYC"], None, now + dt.timedelta(days=365))
    admin.register_system(OPERATOR, "BANK-A", "gateway", cert_pem=gateway.cert_pem)
    admin.register_system(
        OPERATOR, "", "operator", cert_pem=operator.cert_pem, roles=frozenset(Role)
    )
    admin.gate.close()
    huge = "R" * 100_000
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        with _client(server.address, ca.pem, operator) as op:
            op.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
        for _ in range(3):
            with (
                _client(server.address, ca.pem, stranger) as c,
                pytest.raises(CallFailedError) as info,
            ):
                _verify(c, huge)
            assert info.value.reason != "AUDIT_UNAVAILABLE"
        with _client(server.address, ca.pem, gateway) as gw:
            assert _verify(gw, "CONSENT-1").similarity > 0.5  # type: ignore[attr-defined]
    finally:
        server.stop()
    path = log_dir(data) / LOG_FILE
    refusals = [r for r in read_records(path) if r["system"].startswith("unregistered:")]
    assert len(refusals) == 3
    # bounded before it is recorded (fvs.limits), never the raw 100 KB
    assert all(
        r["consent_ref"].startswith("<refused text: 100000 characters, sha256 ") for r in refusals
    )
    assert max(len(line) for line in path.read_bytes().splitlines()) < 8192
    # A restart over the same trail serves again, and the local tools work.
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        with _client(server.address, ca.pem, gateway) as gw:
            assert _verify(gw, huge[:64]).similarity > 0.5  # type: ignore[attr-defined]
        with _client(server.address, ca.pem, stranger) as c, pytest.raises(CallFailedError) as info:
            _verify(c, huge)
        assert info.value.reason != "AUDIT_UNAVAILABLE"
        assert server.server is not None and server.parts.gate.audit.healthy()
    finally:
        server.stop()
    checked = fvs("audit", "verify", "--data-dir", str(data))
    assert checked.returncode == 0, checked.stderr
    assert "audit trail intact" in checked.stdout
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    used = fvs("admin", "usage", "--agency", "BANK-A", "--month", month, "--data-dir", str(data))
    assert used.returncode == 0, used.stderr


def test_a_cut_trail_is_refused_until_repaired(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    settings = settings_factory()
    data = settings.store.data_dir
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        with DevClient(server.address) as dev:
            for _ in range(3):
                with pytest.raises(CallFailedError):
                    dev.verify(CITIZEN_A, photo("obama2.jpg"))  # not enrolled: audited
    finally:
        server.stop()
    path = log_dir(data) / LOG_FILE
    rows = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(rows[:-2]))  # cut the two newest records
    checked = fvs("audit", "verify", "--data-dir", str(data))
    assert checked.returncode == 1 and "2 records missing from the end" in checked.stderr
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        with DevClient(server.address) as dev:
            assert dev.health() == "NOT_SERVING"
            with pytest.raises(CallFailedError) as info:
                dev.verify(CITIZEN_A, photo("obama2.jpg"))
            assert info.value.reason == "AUDIT_UNAVAILABLE"
    finally:
        server.stop()
    assert len(path.read_bytes().splitlines()) == len(rows) - 2  # nothing chained onto it
    repaired = fvs("audit", "repair", "--accept-loss", "--data-dir", str(data))
    assert repaired.returncode == 0, repaired.stderr
    assert "2 records lost" in repaired.stdout
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        with DevClient(server.address) as dev:
            assert dev.health() == "SERVING"
            with pytest.raises(CallFailedError) as info:
                dev.verify(CITIZEN_A, photo("obama2.jpg"))
            assert info.value.reason != "AUDIT_UNAVAILABLE"
    finally:
        server.stop()
    assert fvs("audit", "verify", "--data-dir", str(data)).returncode == 0


def test_two_servers_write_one_postgresql_trail(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    pipeline: FacePipeline,
    pg_url: str,
) -> None:
    """Two real servers (own data directories, one copied audit key) share a PostgreSQL
    trail; calls alternate between them; `fvs audit verify --store` checks one chain."""
    import shutil

    from fvs.store.crypto import write_new_key
    from tests.conftest import migrate_all

    first, second, stranger = settings_factory(), settings_factory(), settings_factory()
    for s in (first, second, stranger):
        s.store.url = pg_url
    migrate_all(first.store)  # registry, access and audit schemas, as `fvs db migrate`
    write_new_key(first.store.key_file())  # every server of one registry holds its key
    for s in (second, stranger):
        s.store.key_file().parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(first.store.key_file(), s.store.key_file())
    (second.store.data_dir / "keys").mkdir(parents=True, exist_ok=True)
    from fvs.audit.trail import audit_key

    audit_key(first.store.data_dir)  # made once, copied to every server of this trail
    shutil.copy2(
        first.store.data_dir / "keys" / "audit-chain.key",
        second.store.data_dir / "keys" / "audit-chain.key",
    )
    servers = [ServerThread(s, lambda: pipeline) for s in (first, second)]
    try:
        for server in servers:
            server.loaded.result(timeout=60)
            with DevClient(server.address) as dev:
                dev.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
        for i in range(6):
            with DevClient(servers[i % 2].address) as dev:
                assert dev.verify(CITIZEN_A, photo("obama2.jpg")).similarity > 0.5
    finally:
        for server in servers:
            server.stop()
    where = ("--store", pg_url, "--data-dir", str(first.store.data_dir))
    checked = fvs("audit", "verify", *where)
    assert checked.returncode == 0, checked.stderr
    assert "intact: 10 records" in checked.stdout  # 2 x (STARTED + OK) enrolments, 6 verifies
    exported = fvs("audit", "export", "--agency", "DEV", *where)
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 10
    # A server with another key cannot extend this trail.
    server = ServerThread(stranger, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        assert "another key" in server.parts.gate.audit.state
        with DevClient(server.address) as dev:
            assert dev.health() == "NOT_SERVING"
    finally:
        server.stop()


def test_each_answer_leaves_only_once_its_audit_record_is_anchored(server: ServerThread) -> None:
    """The outcome's record is written in the worker and flushed on the audit thread (a worker
    that waits for the disk is moved to the core that takes its interrupts: README
    "Performance"); the answer, a refusal included, still leaves only after the flush, which
    anchors the head: right after each answer the head covers its record."""
    from fvs.audit.log import verify_chain
    from fvs.audit.trail import audit_key, audit_path, head_path

    data = server.settings.store.data_dir
    assert data is not None
    with DevClient(server.address) as client:
        client.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
        for image, refused in ((photo("obama2.jpg"), False), (b"not an image", True)):
            try:
                client.verify(CITIZEN_A, image)
            except CallFailedError as exc:
                assert refused, exc
            else:
                assert not refused
            # read at once, before any other call could flush
            last = list(read_records(audit_path(data)))[-1]
            assert last["operation"] == "Verify"
            assert last["outcome"] == ("REFUSED" if refused else "OK")
            check = verify_chain(audit_path(data), audit_key(data), head_path(data))
            assert check.ok, check
            assert check.anchored_seq >= int(last["seq"]), (check.anchored_seq, last["seq"])
