"""Wrong credentials, for real: a throw-away PostgreSQL cluster that checks passwords
(scram-sha-256; the machine's own server trusts every local connection, so it cannot say no),
and `fvs serve`, `fvs db status` and `fvs db migrate` given a wrong password or a database
that does not exist. Each stops at once with STORE_UNAVAILABLE and PostgreSQL's own words,
the password masked and never printed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fvs.store.crypto import write_new_key
from tests.e2e.conftest import free_port

PASSWORD = "Right-horse-battery-7"
WRONG = "Wrong-staple-41"


@dataclass(frozen=True)
class Cluster:
    port: int

    def url(self, password: str, database: str = "postgres") -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{database}"


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not found:  # scripts/ensure_postgres.sh installs the package when it is missing
        subprocess.run(
            [str(Path(__file__).resolve().parents[2] / "scripts" / "ensure_postgres.sh")],
            check=True,
            capture_output=True,
            timeout=600,
        )
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    return found[-1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="fvs-scram-"))
    run_as: list[str] = []
    if os.getuid() == 0:  # PostgreSQL refuses to run as root
        # the account scripts/ensure_postgres.sh makes, which only runs where no server answers
        if subprocess.run(["id", "fvspg"], capture_output=True, check=False).returncode != 0:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "fvspg"],
                check=True,
                capture_output=True,
            )
        run_as = ["runuser", "-u", "fvspg", "--"]
        shutil.chown(root, "fvspg")
    root.chmod(0o700)
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if run_as:
        shutil.chown(pwfile, "fvspg")
    port = free_port()
    pg_ctl = [*run_as, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-w"]
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
         "--auth=scram-sha-256", f"--pwfile={pwfile}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        [*pg_ctl, "-l", str(root / "log"), "-o",
         f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        yield Cluster(port)
    finally:
        subprocess.run(
            [*pg_ctl, "-m", "immediate", "stop"], check=False, capture_output=True, timeout=60
        )
        shutil.rmtree(root, ignore_errors=True)


def fvs(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FVS_")}
    return subprocess.run(
        [sys.executable, "-m", "fvs", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "FVS_MODEL__PROVIDERS": "cpu"},
    )


def refused(done: subprocess.CompletedProcess[str], words: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode == 3, out  # EXIT_UNAVAILABLE
    assert "STORE_UNAVAILABLE" in out, out
    assert words in out, out
    assert "postgres:***@127.0.0.1" in out, out
    assert PASSWORD not in out and WRONG not in out, out
    assert "Traceback" not in out, out


@pytest.fixture
def data(tmp_path: Path) -> Path:
    write_new_key(tmp_path / "keys" / "template.key")
    return tmp_path


def test_the_cluster_checks_passwords(cluster: Cluster, data: Path) -> None:
    done = fvs("db", "migrate", "--store", cluster.url(PASSWORD), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    done = fvs("db", "status", "--store", cluster.url(PASSWORD), "--data-dir", str(data))
    assert done.returncode == 0, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize("command", ["migrate", "status"])
def test_db_commands_with_a_wrong_password(cluster: Cluster, data: Path, command: str) -> None:
    done = fvs("db", command, "--store", cluster.url(WRONG), "--data-dir", str(data))
    refused(done, 'password authentication failed for user "postgres"')


@pytest.mark.parametrize("command", ["migrate", "status"])
def test_db_commands_with_a_missing_database(cluster: Cluster, data: Path, command: str) -> None:
    done = fvs("db", command, "--store", cluster.url(PASSWORD, "fvs_nope"), "--data-dir", str(data))
    refused(done, 'database "fvs_nope" does not exist')


@pytest.mark.parametrize(
    ("password", "database", "words"),
    [
        (WRONG, "postgres", 'password authentication failed for user "postgres"'),
        (PASSWORD, "fvs_nope", 'database "fvs_nope" does not exist'),
    ],
)
def test_serve_stops_at_start(
    cluster: Cluster, data: Path, password: str, database: str, words: str
) -> None:
    done = fvs(
        "serve", "--insecure", "--address", f"127.0.0.1:{free_port()}",
        "--store", cluster.url(password, database), "--data-dir", str(data),
        "--template-key-file", str(data / "keys" / "template.key"),
    )  # fmt: skip
    refused(done, words)


def test_the_password_from_the_environment_is_masked_too(cluster: Cluster, data: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FVS_")}
    done = subprocess.run(
        [sys.executable, "-m", "fvs", "db", "status", "--data-dir", str(data)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "FVS_STORE__URL": cluster.url(WRONG)},
    )
    refused(done, "password authentication failed")
