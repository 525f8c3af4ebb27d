"""deploy/: the compose file and Envoy's configuration, loaded and checked for the topology
the README describes (CI has no Docker engine and no Envoy binary to validate them with)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from fvs.cli import parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if re.fullmatch(r"fvs-\d+", n)}


def test_compose_topology() -> None:
    compose = load("compose.yaml")
    services = compose["services"]
    assert {"postgres", "migrate", "envoy"} <= set(services)
    fvs = replicas(compose)
    assert len(fvs) >= 2
    for name, svc in fvs.items():
        env = svc["environment"]
        assert env["FVS_STORE__URL"].startswith("postgresql://"), name
        assert "@postgres:5432/" in env["FVS_STORE__URL"]
        assert env["FVS_STORE__TEMPLATE_KEY_FILE"].startswith("/run/secrets/")
        assert env["FVS_ACCESS__TLS_DIR"] == "/etc/fvs/tls"  # mutual TLS, never --insecure
        assert "--insecure" not in str(svc.get("command", ""))
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        test = svc["healthcheck"]["test"]
        assert test[:2] == ["CMD", "fvs"]
        # the health check is a real `fvs health` command line over mutual TLS
        args = parser().parse_args(test[2:])
        assert args.command == "health"
        assert (args.ca, args.cert) == (
            Path("/etc/fvs/tls/ca.pem"),
            Path("/etc/fvs/tls/health.pem"),
        )
        assert any(v.endswith(":/etc/fvs/tls:ro") for v in svc["volumes"])
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert parser().parse_args(migrate["command"]).db_command == "migrate"
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    for dep in fvs:
        assert services["envoy"]["depends_on"][dep]["condition"] == "service_healthy"
    # every secret a service names is declared, and no password is written in the file
    declared = set(compose["secrets"])
    for svc in services.values():
        for secret in svc.get("secrets", []):
            assert (secret if isinstance(secret, str) else secret["source"]) in declared
    assert "PASSWORD:" not in (DEPLOY / "compose.yaml").read_text().replace("_PASSWORD_FILE", "")


def test_envoy_balances_over_every_replica_with_grpc_health_checks() -> None:
    compose = load("compose.yaml")
    envoy = load("envoy.yaml")["static_resources"]
    (listener,) = envoy["listeners"]
    port = listener["address"]["socket_address"]["port_value"]
    assert f"{port}:{port}" in compose["services"]["envoy"]["ports"]
    (chain,) = listener["filter_chains"]
    (proxy,) = chain["filters"]
    assert proxy["name"] == "envoy.filters.network.tcp_proxy"  # TLS passes through to FVS
    assert "transport_socket" not in chain  # ...so Envoy never terminates it
    (cluster,) = [c for c in envoy["clusters"] if c["name"] == proxy["typed_config"]["cluster"]]
    endpoints = {
        (e["endpoint"]["address"]["socket_address"]["address"],
         e["endpoint"]["address"]["socket_address"]["port_value"])
        for group in cluster["load_assignment"]["endpoints"]
        for e in group["lb_endpoints"]
    }  # fmt: skip
    assert endpoints == {(name, 50051) for name in replicas(compose)}
    (check,) = cluster["health_checks"]
    assert "grpc_health_check" in check
    match = check["transport_socket_match_criteria"]
    (probe,) = [m for m in cluster["transport_socket_matches"] if m["match"] == match]
    tls = probe["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["tls_certificates"][0]["certificate_chain"]["filename"].endswith("health.pem")
    assert tls["validation_context"]["trusted_ca"]["filename"].endswith("ca.pem")
    assert tls["alpn_protocols"] == ["h2"]


def test_prepare_script_lays_out_what_the_compose_file_mounts() -> None:
    script = (DEPLOY / "prepare.sh").read_text()
    compose = load("compose.yaml")
    for secret in compose["secrets"].values():
        name = Path(secret["file"]).name
        assert name in script, name
    for line in script.splitlines():
        if line.startswith('"$fvs"'):
            words = shlex.split(line.replace('"${hosts[@]}"', "").replace('"$fvs"', ""))
            args = parser().parse_args([w.replace("$dir", "/tmp/x") for w in words])
            assert args.func is not None
    assert "ca.key" not in script.split("cp ")[1].splitlines()[0]  # the CA key stays offline
