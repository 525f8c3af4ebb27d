"""`fvs serve --processes 2` (fvs.api.group): two real serving processes on one port over one
SQLite data directory. Both answer; what one enrols or erases is in force on the other within
a second; a plain server cannot take the port; a killed process is replaced; SIGTERM drains
both (every acknowledged enrolment on disk, one valid audit chain)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from fvs.api.client import CallFailedError, FvsClient
from fvs.api.observe import PROCESS_HEADER
from fvs.api.v1 import registry_pb2, registry_pb2_grpc
from fvs.citizen_id import complete
from fvs.cli.common import EXIT_UNAVAILABLE
from tests.conftest import photo
from tests.e2e.conftest import Burst, DevClient, ServerProcess, enrolled_citizens

pytestmark = pytest.mark.model

UNKNOWN = complete("990000000001")


def _process_of(client: FvsClient) -> str:
    """Which process the client's connection reached (the fvs-process header)."""
    stub = registry_pb2_grpc.RegistryStub(client.channel)
    request = registry_pb2.GetCitizenRequest(citizen_id=UNKNOWN)
    try:
        _, call = stub.GetCitizen.with_call(request, timeout=10)
        metadata = call.initial_metadata()
    except grpc.RpcError as exc:
        metadata = exc.initial_metadata()  # type: ignore[attr-defined]
    return dict(metadata or ())[PROCESS_HEADER]  # type: ignore[arg-type]


def _one_client_per_process(address: str, n: int = 2) -> dict[str, DevClient]:
    """Connections until each process holds one (the kernel picks a process per connection)."""
    clients: dict[str, DevClient] = {}
    for _ in range(64):
        client = DevClient(address, timeout_s=30, own_connection=True)
        index = _process_of(client)
        if index in clients:
            client.channel.close()
        else:
            clients[index] = client
        if len(clients) == n:
            return clients
    raise AssertionError(f"64 connections reached only processes {sorted(clients)}")


def _within(check: Callable[[], bool], seconds: float) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not in force within {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - start


def _children(pid: int) -> list[int]:
    """The serving processes of the supervisor ``pid`` (not multiprocessing's helper)."""
    found = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    serving = []
    for child in found:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                serving.append(child)
        except FileNotFoundError:
            pass
    return serving


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def test_two_processes_on_one_port(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(
        data,
        metrics=True,
        grace_s=20.0,
        args=("--processes", "2"),
        env={"FVS_DEDUP__MODE": "off"},  # the burst enrols two faces under many IDs
    )
    clients: dict[str, DevClient] = {}
    try:
        server.wait_serving()
        # a plain server cannot take the group's port (SO_REUSEPORT is asked for explicitly)
        plain = subprocess.run(
            [sys.executable, "-m", "fvs", "serve", "--insecure", "--address", server.address,
             "--data-dir", str(tmp_path / "plain"), "--providers", "cpu"],
            check=False, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert plain.returncode == EXIT_UNAVAILABLE, plain.stderr
        assert "address is in use" in plain.stderr

        # both answer, each with its own metrics endpoint (the metrics port + its index)
        clients = _one_client_per_process(server.address)
        a, b = clients["0"], clients["1"]
        for k in (0, 1):  # a call is counted as it ends, a moment after its answer is sent
            port = server.metrics_port + k
            _within(lambda port=port: _metric(port, "fvs_calls_total") >= 1, 5.0)

        # what one process changes is in force on the other within a second
        citizen = complete("510000000001")
        first = a.enroll(citizen, photo("obama.jpg"), create_if_missing=True)
        assert b.verify(citizen, photo("obama2.jpg")).template_version == first.template_version
        second = a.enroll(citizen, photo("obama2.jpg")).template_version
        _within(lambda: b.verify(citizen, photo("obama.jpg")).template_version == second, 1.0)

        def erased() -> bool:
            try:
                b.verify(citizen, photo("obama.jpg"))
            except CallFailedError as exc:
                return exc.reason == "NOT_ENROLLED"
            return False

        a.delete_enrollment(citizen)
        _within(erased, 1.0)

        # a killed process is replaced; the group is SERVING again
        victim = _children(server.proc.pid)[1]
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            serving = _children(server.proc.pid)
            return victim not in serving and len(serving) == 2

        _within(replaced, 10.0)
        server.wait_serving()
        assert "restarting it" in server.logs()
        for client in clients.values():
            client.channel.close()
        clients = {}

        # SIGTERM: health NOT_SERVING at once, the calls in flight finish, both processes exit
        burst = Burst(server.address, "52000")
        burst.start(4)
        deadline = time.monotonic() + 60
        while len(burst.acknowledged) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        with FvsClient(server.address, timeout_s=5) as probe:
            server.signal(signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(0.3)  # the supervisor's request reaches the processes within 0.1 s
            try:
                health = probe.health()
            except CallFailedError:
                health = "UNAVAILABLE"  # the listener already closed
        assert server.wait(60) == 0
        burst.join()
    finally:
        for client in clients.values():
            client.channel.close()
        server.stop()
    assert health in ("NOT_SERVING", "UNAVAILABLE")
    assert any(t > signalled for t in burst.acknowledged.values()), "nothing was in flight"
    assert set(burst.acknowledged) <= enrolled_citizens(data)
    assert "all 2 processes stopped" in server.logs()
    verified = subprocess.run(
        [sys.executable, "-m", "fvs", "audit", "verify", "--data-dir", str(data)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


def test_a_permits_rate_limit_holds_for_the_group(tmp_path: Path) -> None:
    """Two processes share the permit's bucket: a burst of 3 allows 3 calls between them, not
    3 each (the calls alternate between the processes; an allowed call is refused afterwards
    CITIZEN_NOT_FOUND, before the model, so no face is needed)."""
    import datetime as dt

    from fvs.access.admin import AdminService
    from fvs.access.gate import Gate
    from fvs.access.model import Caller
    from fvs.access.policy import ConsentRules
    from fvs.api.client import ClientTls
    from fvs.pki import init_pki, server_dir
    from tests.e2e.conftest import free_port

    data = tmp_path / "data"
    ca, _ = init_pki(tmp_path / "pki", "Test Authority", [])
    gateway = ca.issue("gateway", "BANK-A")
    assert gateway.key_pem is not None
    operator = Caller(local_operator="test")
    admin = AdminService(Gate.open(data, ConsentRules()), ca.pem)
    admin.add_agency(operator, "BANK-A", "PRIVATE", "Bank A", "0107536000001", "banking", [])
    permit = admin.grant_permit(
        operator, "BANK-A", ["KYC"], None, dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    )
    admin.set_rate_limit(operator, permit.id, 0.001, 3)
    admin.register_system(operator, "BANK-A", "gateway", cert_pem=gateway.cert_pem)
    admin.gate.close()
    address = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fvs", "serve", "--tls-dir", str(server_dir(tmp_path / "pki")),
             "--address", address, "--data-dir", str(data), "--providers", "cpu",
             "--processes", "2"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "FVS_MODEL__WARMUP_RUNS": "1"},
        )  # fmt: skip
    tls = ClientTls(ca.pem, gateway.cert_pem, gateway.key_pem)
    clients: dict[str, FvsClient] = {}
    try:
        with FvsClient(address, timeout_s=2, tls=tls) as probe:

            def serving() -> bool:
                assert proc.poll() is None, log_path.read_text()
                try:
                    return probe.health() == "SERVING"
                except CallFailedError:
                    return False

            _within(serving, 120.0)
        for _ in range(64):
            client = FvsClient(address, timeout_s=30, tls=tls, own_connection=True)
            index = _process_of(client)
            if index in clients:
                client.channel.close()
            else:
                clients[index] = client
            if len(clients) == 2:
                break
        assert len(clients) == 2
        reasons = []
        for k in range(8):
            try:
                clients[str(k % 2)].verify(
                    UNKNOWN, photo("obama.jpg"), "KYC", "CONSENT-1", dt.datetime.now(dt.UTC)
                )
            except CallFailedError as exc:
                reasons.append(exc.reason)
    finally:
        for client in clients.values():
            client.channel.close()
        proc.terminate()
        proc.wait(60)
    assert reasons.count("CITIZEN_NOT_FOUND") == 3, reasons  # the burst, once for the group
    assert reasons.count("RATE_LIMITED") == 5, reasons
