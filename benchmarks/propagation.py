"""Many servers, one truth: how fast a change made through one server is in force on another.

Two measurements on one PostgreSQL database:

* ``index`` (in process, microsecond resolution): one store commits a re-enrolment or an
  erasure; a second store's template index, kept in step by ``fvs.store.sync.IndexSync``, is
  watched in a tight loop until it has the change. Run for both modes (LISTEN/NOTIFY and
  polling the change log), which is how the default was chosen.
* ``servers`` (the real topology): two ``fvs serve`` processes with mutual TLS on two ports
  sharing the database; a client alternates between them: enrol, re-enrol and erase through
  one, and suspend, resume, revoke the agency's permit and disable its system; each change is
  polled for with Verify on the other server. These times include one Verify (the model
  runs), so they are upper bounds.

    python benchmarks/propagation.py --store postgresql://postgres@127.0.0.1:5432/fvs_bench \
        --out docs/benchmarks/propagation.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fvs.access.admin import AdminService  # noqa: E402
from fvs.access.gate import Gate  # noqa: E402
from fvs.access.model import Caller, Role  # noqa: E402
from fvs.access.policy import ConsentRules  # noqa: E402
from fvs.api.client import CallFailedError, ClientTls, FvsClient, channel  # noqa: E402
from fvs.api.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402
from fvs.config import StoreSettings  # noqa: E402
from fvs.pki import init_pki, server_dir  # noqa: E402
from fvs.store.crypto import write_new_key  # noqa: E402
from fvs.store.factory import open_access, open_registry  # noqa: E402
from fvs.store.index import TemplateIndex  # noqa: E402
from fvs.store.migrate import components, migrate  # noqa: E402
from fvs.store.sync import IndexSync  # noqa: E402
from fvs.store.synthetic import minimal_citizen, random_templates  # noqa: E402

PHOTOS = ROOT / "tests" / "data"
OPERATOR = Caller(local_operator="bench")
CITIZEN = "3100600445635"


def summary(ms: list[float]) -> dict[str, float]:
    a = np.array(ms)
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def migrate_all(store: StoreSettings) -> None:
    from fvs.store.factory import open_database

    location = store.location()
    for name, migs in components().items():
        if location.backend in migs:
            db = open_database(location, name, pool_size=2)
            try:
                migrate(db, name, migs)
            finally:
                db.close()


def _wait(check: Callable[[], bool], timeout_s: float = 10.0, pause_s: float = 0.0) -> float:
    """Seconds until ``check()`` holds (raises TimeoutError past ``timeout_s``)."""
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError("change not seen")
        if pause_s:
            time.sleep(pause_s)
    return time.perf_counter() - start


def measure_index(store: StoreSettings, mode: str, changes: int) -> dict[str, Any]:
    writer = open_registry(store)
    reader = open_registry(store)
    index = TemplateIndex("m@1", 512)
    sync = IndexSync(reader, index, IndexSync.database_time(reader), mode, interval_s=0.25)
    sync.start()
    vectors = random_templates(changes + 1, 512, seed=7)
    ms: list[float] = []
    try:
        writer.add_template(CITIZEN, "m@1", vectors[0], create=minimal_citizen(CITIZEN))
        _wait(lambda: index.version_of(CITIZEN) is not None, pause_s=0.0005)
        for k in range(1, changes + 1):
            if k % 5 == 0:  # every fifth change is an erasure, then the next re-enrols
                writer.delete_templates(CITIZEN)
                t = _wait(lambda: index.version_of(CITIZEN) is None, pause_s=0.0002)
            else:
                template, _ = writer.add_template(CITIZEN, "m@1", vectors[k])
                v = template.version
                t = _wait(lambda v=v: index.version_of(CITIZEN) == v, pause_s=0.0002)  # type: ignore[misc]
            ms.append(t * 1000.0)
            time.sleep(0.01)
    finally:
        sync.stop()
        writer.close()
        reader.close()
    return {"mode": mode, **summary(ms)}


# the real topology ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def two_servers(store: StoreSettings, work: Path) -> Iterator[dict[str, Any]]:
    pki = work / "pki"
    ca, _ = init_pki(pki, "Bench Authority", [])
    tls = server_dir(pki)  # what a server needs, without the CA key
    certs = {
        "gateway": ca.issue("gateway", "BANK-A"),
        "operator": ca.issue("operator", "FVS"),
    }
    access = open_access(store)
    admin = AdminService(Gate.open(work / "admin-data", ConsentRules(), access=access), ca.pem)
    admin.add_agency(OPERATOR, "BANK-A", "PRIVATE", "Bank A", "0107536000001", "banking", [])
    permit = admin.grant_permit(
        OPERATOR, "BANK-A", ["KYC"], None, dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    )
    admin.register_system(OPERATOR, "BANK-A", "gateway", cert_pem=certs["gateway"].cert_pem)
    admin.register_system(
        OPERATOR,
        "",
        "operator",
        cert_pem=certs["operator"].cert_pem,
        roles=frozenset({Role.ADMIN, Role.REGISTRY}),
    )
    ports = [_free_port(), _free_port()]
    env = {
        **os.environ,
        "FVS_MODEL__PROVIDERS": "cpu",
        "FVS_MODEL__WARMUP_RUNS": "1",
        "FVS_SERVER__WORKERS": "2",
    }
    procs = []
    logs = []
    for k in range(len(ports)):
        # One deployment, one set of keys (audit chain key, citizen HMAC): every server of a
        # shared trail must hold the same ones, or it refuses to extend the trail.
        shutil.copytree(work / "admin-data" / "keys", work / f"data{k}" / "keys")
    for k, port in enumerate(ports):
        log = (work / f"server{k}.log").open("w")
        logs.append(log)
        cmd = [
            sys.executable, "-m", "fvs", "serve", "--tls-dir", str(tls),
            "--address", f"127.0.0.1:{port}", "--store", str(store.url),
            "--data-dir", str(work / f"data{k}"),
            "--template-key-file", str(store.key_file()),
        ]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))

    def tls_for(name: str) -> ClientTls:
        issued = certs[name]
        assert issued.key_pem is not None
        return ClientTls(ca.pem, issued.cert_pem, issued.key_pem)

    try:
        addresses = [f"127.0.0.1:{p}" for p in ports]
        for k, address in enumerate(addresses):
            with FvsClient(address, timeout_s=2, tls=tls_for("operator")) as c:

                def serving(c: FvsClient = c, k: int = k) -> bool:
                    if procs[k].poll() is not None:
                        raise RuntimeError((work / f"server{k}.log").read_text())
                    try:
                        return c.health() == "SERVING"
                    except CallFailedError:
                        return False

                _wait(serving, timeout_s=120, pause_s=0.2)
        yield {
            "addresses": addresses,
            "tls": tls_for,
            "admin": admin,
            "permit": permit.id,
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for log in logs:
            log.close()
        admin.gate.close()


def measure_servers(store: StoreSettings, rounds: int, work: Path) -> dict[str, Any]:
    probe = (PHOTOS / "obama2.jpg").read_bytes()
    faces = [(PHOTOS / n).read_bytes() for n in ("obama.jpg", "obama2.jpg")]
    times: dict[str, list[float]] = {}
    seen: list[str] = []

    def record(kind: str, seconds: float) -> None:
        times.setdefault(kind, []).append(seconds * 1000.0)

    with two_servers(store, work) as dep:
        a, b = dep["addresses"]
        op = [FvsClient(x, timeout_s=20, tls=dep["tls"]("operator")) for x in (a, b)]
        gw = [FvsClient(x, timeout_s=20, tls=dep["tls"]("gateway")) for x in (a, b)]

        def verify(k: int) -> Any:
            return gw[k].verify(CITIZEN, probe, "KYC", "CONSENT-1", dt.datetime.now(dt.UTC))

        def refused_with(k: int, reason: str) -> bool:
            try:
                verify(k)
            except CallFailedError as exc:
                seen.append(exc.reason)
                return exc.reason == reason
            return False

        first = op[0].enroll(CITIZEN, faces[0], create_if_missing=True)
        assert verify(1).template_version == first.template_version
        for r in range(rounds):
            w, o = r % 2, 1 - r % 2  # alternate: write through one, read through the other
            version = op[w].enroll(CITIZEN, faces[r % 2]).template_version
            record("re-enrol", _wait(lambda o=o, v=version: verify(o).template_version == v))
            op[w].delete_enrollment(CITIZEN)
            record("erase", _wait(lambda o=o: refused_with(o, "NOT_ENROLLED")))
            version = op[o].enroll(CITIZEN, faces[0]).template_version
            record("enrol", _wait(lambda w=w, v=version: verify(w).template_version == v))
            with channel(dep["addresses"][w], dep["tls"]("operator")) as ch:
                stub = admin_pb2_grpc.AdminStub(ch)
                req = admin_pb2.ChangePermitRequest(permit_id=dep["permit"], reason="bench")
                stub.SuspendPermit(req, timeout=10)
                record("suspend", _wait(lambda o=o: refused_with(o, "PERMIT_SUSPENDED")))
                stub.ResumePermit(req, timeout=10)
                record("resume", _wait(lambda o=o: verify(o).similarity > 0.3))
            dep["admin"].set_system_active(OPERATOR, "BANK-A", "gateway", False)
            record("disable", _wait(lambda o=o: refused_with(o, "SYSTEM_DISABLED")))
            dep["admin"].set_system_active(OPERATOR, "BANK-A", "gateway", True)
            record("enable", _wait(lambda o=o: verify(o).similarity > 0.3))
        with channel(a, dep["tls"]("operator")) as ch:
            req = admin_pb2.ChangePermitRequest(permit_id=dep["permit"], reason="bench")
            admin_pb2_grpc.AdminStub(ch).RevokePermit(req, timeout=10)
        record("revoke", _wait(lambda: refused_with(1, "PERMIT_REVOKED")))
        for c in (*op, *gw):
            c.channel.close()
    return {kind: summary(ms) for kind, ms in times.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="postgresql://... (an empty database)")
    p.add_argument("--changes", type=int, default=200, help="index changes per sync mode")
    p.add_argument("--rounds", type=int, default=5, help="rounds of changes between servers")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = StoreSettings(url=args.store, data_dir=work / "data")
        write_new_key(store.key_file())
        migrate_all(store)
        result: dict[str, Any] = {
            "index": [measure_index(store, m, args.changes) for m in ("notify", "poll")],
            "servers": measure_servers(store, args.rounds, work) if args.rounds else {},
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
