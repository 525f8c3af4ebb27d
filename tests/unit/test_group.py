"""The pieces of `fvs serve --processes N` that need no process (fvs.api.group): threads per
process, metrics ports, group health, and refusing a port a plain server holds."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fvs.api import group
from fvs.api.group import GroupMember, check_shareable, child_settings
from fvs.cli.common import EXIT_UNAVAILABLE
from fvs.config import ServerSettings, Settings


def _settings(**server: object) -> Settings:
    settings = Settings()
    settings.server = ServerSettings(**server)  # type: ignore[arg-type]
    settings.observability.metrics_address = "127.0.0.1:9100"
    return settings


def test_children_share_the_cores_and_get_a_metrics_port_each() -> None:
    settings = _settings(processes=2)
    first, second = (child_settings(settings, k, cores=8) for k in (0, 1))
    assert first.server.reuse_port and second.server.reuse_port
    assert first.model.intra_op_threads == second.model.intra_op_threads == 4
    assert not first.model.allow_spinning
    assert first.server.workers == 5  # default_workers: the process's cores plus one
    assert first.observability.metrics_address == "127.0.0.1:9100"
    assert second.observability.metrics_address == "127.0.0.1:9101"
    assert settings.model.intra_op_threads == 0  # the supervisor's own settings untouched
    # what an operator set explicitly is kept
    explicit = _settings(processes=4, workers=3)
    explicit.model.intra_op_threads = 2
    child = child_settings(explicit, 3, cores=2)
    assert (child.server.workers, child.model.intra_op_threads) == (3, 2)
    assert child_settings(_settings(processes=4), 0, cores=2).model.intra_op_threads == 1


def test_the_group_serves_only_when_every_process_does(tmp_path: Path) -> None:
    states = multiprocessing.get_context("spawn").Array("b", [group.STARTING] * 2, lock=False)
    control = multiprocessing.get_context("spawn").Value("b", group.RUN, lock=False)
    a, b = (GroupMember(k, 2, states, tmp_path / "rates", control) for k in (0, 1))
    a.publish(group.SERVING)
    assert not a.group_serving()  # the other is still loading
    b.publish(group.SERVING)
    assert a.group_serving() and b.group_serving()
    states[1] = group.RESTARTING  # being replaced after a crash: not bound yet, not counted
    assert a.group_serving()
    b.publish(group.NOT_SERVING)  # its audit trail or store failing: the group says so
    assert not a.group_serving()
    b.publish(group.DRAINING)
    assert not a.group_serving()
    assert a.requested() == group.RUN
    control.value = group.STOP
    assert b.requested() == group.STOP


def test_a_port_held_by_a_plain_server_is_refused_at_once(tmp_path: Path) -> None:
    with socket.socket() as plain:  # no SO_REUSEPORT: does not share
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        address = f"127.0.0.1:{plain.getsockname()[1]}"
        with pytest.raises(OSError, match="in use by a server that does not share it"):
            check_shareable(address)
        result = subprocess.run(
            [sys.executable, "-m", "fvs", "serve", "--insecure", "--processes", "2",
             "--address", address, "--data-dir", str(tmp_path / "data")],
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert "does not share it" in result.stderr
    with socket.socket() as sharing:  # a free port, or one shared on purpose, passes
        sharing.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sharing.bind(("127.0.0.1", 0))
        sharing.listen()
        check_shareable(f"127.0.0.1:{sharing.getsockname()[1]}")


def test_a_group_needs_a_fixed_port(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fvs", "serve", "--insecure", "--processes", "2",
         "--address", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs a fixed port" in result.stderr


def test_a_group_process_shares_rate_limits_and_names_itself(tmp_path: Path) -> None:
    from fvs.access.rate import SharedRateLimiter
    from fvs.api.server import FvsServer, build_parts

    settings = Settings()
    settings.store.data_dir = tmp_path / "data"
    settings.access.insecure = True
    SharedRateLimiter.create(tmp_path / "rates")
    ctx = multiprocessing.get_context("spawn")
    member = GroupMember(
        1,
        2,
        ctx.Array("b", [group.STARTING] * 2, lock=False),
        tmp_path / "rates",
        ctx.Value("b", group.RUN, lock=False),
    )
    parts = build_parts(settings)

    async def build() -> FvsServer:  # grpc.aio makes its server on a running loop
        return FvsServer(settings, parts, member)

    try:
        server = asyncio.run(build())
        assert isinstance(parts.gate.policy.limiter, SharedRateLimiter)
        assert server.observer.process == "1"
    finally:
        parts.close()
