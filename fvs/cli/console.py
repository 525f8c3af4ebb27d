"""`fvs console`: the tester console, a web application calling an FVS server over gRPC."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from fvs.cli.common import DEFAULT_SERVER, EXIT_USAGE

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8080"


def register(sub: Any) -> None:
    cmd = sub.add_parser(
        "console",
        help="the tester console: a web page to verify, enrol and compare photos",
        description="Serves the tester console on --listen (loopback by default). It calls "
        "the FVS server at --server as an ordinary gRPC client with the tester's own "
        "certificate, keeps no photos and never opens the store.",
    )
    cmd.add_argument("--server", default=DEFAULT_SERVER, help="HOST:PORT of an FVS server")
    cmd.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN})"
    )
    cmd.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --listen on a non-loopback address (anyone who reaches the console then "
        "acts with the tester's certificate)",
    )
    cmd.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="another Host header to accept (the name a browser uses to reach the console)",
    )
    cmd.add_argument("--timeout", type=float, default=30.0, help="seconds per FVS call")
    tls = cmd.add_argument_group(
        "how to reach FVS: --tls-dir, or --ca/--cert/--key, or --insecure (a dev server)"
    )
    tls.add_argument(
        "--tls-dir",
        type=Path,
        help="a folder with ca.pem and one certificate NAME.pem with its key NAME.key "
        "(as `fvs admin system add --out` or `operator add --out` writes, plus the CA)",
    )
    tls.add_argument("--ca", type=Path, help="the deployment's CA certificate (ca.pem)")
    tls.add_argument("--cert", type=Path, help="the tester's certificate")
    tls.add_argument("--key", type=Path, help="the tester's private key")
    tls.add_argument(
        "--insecure", action="store_true", help="plaintext, to an `fvs serve --insecure` server"
    )
    cmd.set_defaults(func=run)


def _tls_files(args: argparse.Namespace) -> tuple[Path, Path, Path] | None:
    """(ca, cert, key), or None for --insecure; exits with a usage error otherwise."""
    explicit = [args.ca, args.cert, args.key]
    chosen = sum([args.tls_dir is not None, any(explicit), args.insecure])
    if chosen != 1:
        raise SystemExit(
            "error: give exactly one of --tls-dir DIR, --ca/--cert/--key, or --insecure"
        )
    if args.insecure:
        return None
    if any(explicit):
        if not all(explicit):
            raise SystemExit("error: --ca, --cert and --key go together")
        return args.ca, args.cert, args.key
    folder: Path = args.tls_dir
    pairs = sorted(
        p
        for p in folder.glob("*.pem")
        if p.name not in {"ca.pem", "server.pem"} and p.with_suffix(".key").is_file()
    )
    if not (folder / "ca.pem").is_file() or len(pairs) != 1:
        found = ", ".join(p.name for p in pairs) or "none"
        raise SystemExit(
            f"error: --tls-dir {folder} must hold ca.pem and exactly one NAME.pem with "
            f"NAME.key (certificates with keys found: {found}); or use --ca/--cert/--key"
        )
    return folder / "ca.pem", pairs[0], pairs[0].with_suffix(".key")


def _split(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"error: --listen {listen!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    return sock


def _allowed_hosts(host: str, port: int, extra: list[str]) -> frozenset[str]:
    names = {host, f"[{host}]"} if ":" in host else {host}
    if _is_loopback(host):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    allowed = {f"{name}:{port}" for name in names}
    for item in extra:
        allowed.add(item.lower() if ":" in item else f"{item.lower()}:{port}")
    return frozenset(n.lower() for n in allowed)


def _identity(cert: Path | None) -> str:
    if cert is None:
        return "plaintext as the development system (--insecure)"
    from cryptography import x509

    subject = x509.load_pem_x509_certificate(cert.read_bytes()).subject.rfc4514_string()
    return f"mutual TLS as {subject}"


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from fvs.api.client import ClientTls, FvsClient
    from fvs.config import Settings
    from fvs.console.app import ConsoleConfig, create_app

    files = _tls_files(args)
    try:
        tls = ClientTls.from_files(*files) if files else None
        identity = _identity(files[1] if files else None)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the TLS files: {exc}", file=sys.stderr)
        return EXIT_USAGE
    host, port = _split(args.listen)
    if not _is_loopback(host) and not args.allow_remote:
        raise SystemExit(
            f"error: --listen {args.listen} is not a loopback address; the console acts with "
            "the tester's certificate, so add --allow-remote only on a trusted network"
        )
    settings = Settings()
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    config = ConsoleConfig(
        server=args.server,
        identity=identity,
        allowed_hosts=_allowed_hosts(host, port, args.allow_host),
        max_image_bytes=settings.pipeline.max_image_bytes,
        quality=settings.quality,
    )
    shown = f"[{host}]" if ":" in host else host
    with FvsClient(args.server, timeout_s=args.timeout, tls=tls) as client:
        app = create_app(config, client)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                server_header=False,
                proxy_headers=False,
                limit_concurrency=64,
                timeout_graceful_shutdown=5,
            )
        )
        print(f"fvs console on http://{shown}:{port}/ calling {args.server}", flush=True)
        log.info("console: %s", identity)
        server.run(sockets=[sock])
    return 0
