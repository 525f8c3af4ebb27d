"""Commands that work on this machine: serve, registry seed, model, pki, audit."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from fvs.cli import client
from fvs.cli.common import EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, add_data_dir, settings


def register_serve(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--address", help="HOST:PORT to listen on (default 127.0.0.1:50051)")
    add_data_dir(serve)
    serve.add_argument("--providers", choices=["auto", "cpu", "cuda", "tensorrt"])
    serve.add_argument("--pack", help="model pack id (manifest models/<pack>.json)")
    serve.add_argument(
        "--tls-dir", type=Path, help="folder with server.pem, server.key, ca.pem (mutual TLS)"
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext on loopback only; every call acts as the development "
        "system (all purposes, Registry allowed, consent still required)",
    )
    serve.set_defaults(func=_serve)


def register(sub: Any) -> None:
    registry = sub.add_parser("registry", help="the synthetic civil-registration store")
    rsub = registry.add_subparsers(dest="registry_command", required=True)
    seed = rsub.add_parser("seed", help="generate deterministic synthetic citizens")
    seed.add_argument("--count", type=int, required=True)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument(
        "--with-templates",
        action="store_true",
        help="also store a random unit-vector template each (scale tests only)",
    )
    add_data_dir(seed)
    seed.add_argument("--pack", help="model pack whose id and size the templates take")
    seed.set_defaults(func=_seed)
    client.register_registry(rsub)

    model = sub.add_parser("model", help="model packs")
    msub = model.add_subparsers(dest="model_command", required=True)
    manifest = msub.add_parser("manifest", help="print a manifest for ONNX files you provide")
    manifest.add_argument("--id", required=True)
    manifest.add_argument("--detector", type=Path, required=True)
    manifest.add_argument("--recognizer", type=Path, required=True)
    manifest.add_argument(
        "--license", default="InsightFace pretrained weights: non-commercial research use only"
    )
    manifest.set_defaults(func=_manifest)
    show = msub.add_parser("show", help="show the configured pack, verified")
    show.set_defaults(func=_model_show)

    pki = sub.add_parser("pki", help="the deployment's certificate authority")
    psub = pki.add_subparsers(dest="pki_command", required=True)
    init = psub.add_parser(
        "init",
        help="create a CA, a server certificate and an "
        "administrator certificate (registered in the data directory)",
    )
    init.add_argument("--dir", type=Path, required=True, help="where to write the PKI files")
    init.add_argument("--org", default="FVS", help="organisation name in the certificates")
    init.add_argument(
        "--host",
        action="append",
        default=[],
        help="a DNS name or IP the server is reached at (repeatable; "
        "localhost and 127.0.0.1 are always included)",
    )
    add_data_dir(init)
    init.set_defaults(func=_pki_init)

    audit = sub.add_parser("audit", help="the audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    verify = asub.add_parser("verify", help="check the whole hash chain")
    add_data_dir(verify)
    verify.set_defaults(func=_audit_verify)
    export = asub.add_parser("export", help="one agency's records, for its supervisors")
    export.add_argument("--agency", required=True)
    export.add_argument("--since", help="ISO 8601 time (inclusive)")
    export.add_argument("--until", help="ISO 8601 time (exclusive)")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--out", type=Path, help="file to write (default stdout)")
    add_data_dir(export)
    export.set_defaults(func=_audit_export)


def _serve(args: argparse.Namespace) -> int:
    from fvs.api.server import serve

    s = settings(
        server__address=args.address,
        store__data_dir=args.data_dir,
        model__providers=args.providers,
        model__pack=args.pack,
        access__tls_dir=args.tls_dir,
        access__insecure=args.insecure or None,
    )
    try:
        asyncio.run(serve(s))
    except OSError as exc:
        print(f"error: cannot serve: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return 0


def _seed(args: argparse.Namespace) -> int:
    from fvs.digitalid.backends import open_card_store
    from fvs.digitalid.synthetic import seed_cards
    from fvs.runtime.manifest import load_manifest
    from fvs.store.sqlite import SqliteStore
    from fvs.store.synthetic import random_templates, synthetic_citizens

    if args.count < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    s = settings(store__data_dir=args.data_dir, model__pack=args.pack)
    start = time.perf_counter()
    store = SqliteStore(s.store.data_dir)
    citizens = list(synthetic_citizens(args.count, args.seed))
    templates = None
    model_id = ""
    if args.with_templates:
        manifest, _ = load_manifest(s.model.models_dir, s.model.pack)
        model_id = manifest.model_id
        vectors = random_templates(args.count, manifest.recognizer.embedding_size, args.seed)
        templates = zip((c.citizen_id for c in citizens), vectors, strict=True)
    inserted = store.add_citizens(citizens, templates, model_id)
    total = store.count_citizens()
    store.close()
    cards = seed_cards(s.store.data_dir, citizens, args.seed, open_card_store(s.store.location()))
    print(
        f"seeded {inserted} new synthetic citizens (of {args.count}; {total} in "
        f"{s.store.data_dir}) in {time.perf_counter() - start:.1f} s"
        + (f", templates for model {model_id}" if model_id else "")
        + f"; {cards} new Digital ID cards"
    )
    return 0


def _manifest(args: argparse.Namespace) -> int:
    from fvs.runtime.manifest import sha256_file

    manifest = {
        "format": 1,
        "id": args.id,
        "license": args.license,
        "location": ".",
        "detector": {
            "file": args.detector.name,
            "sha256": sha256_file(args.detector),
            "architecture": "scrfd",
            "input_mean": 127.5,
            "input_std": 128.0,
            "color": "RGB",
        },
        "recognizer": {
            "file": args.recognizer.name,
            "sha256": sha256_file(args.recognizer),
            "architecture": "arcface",
            "input_size": 112,
            "input_mean": 127.5,
            "input_std": 127.5,
            "color": "RGB",
            "embedding_size": 512,
        },
    }
    print(json.dumps(manifest, indent=2))
    return 0


def _model_show(args: argparse.Namespace) -> int:
    from fvs.runtime.manifest import load_manifest, read_verified

    s = settings()
    man, folder = load_manifest(s.model.models_dir, s.model.pack)
    for spec in (man.detector, man.recognizer):
        read_verified(folder, spec.file, spec.sha256)
    print(f"{man.id}: model id {man.model_id}, files in {folder} (sha256 verified)")
    print(f"licence: {man.license}")
    return 0


def _pki_init(args: argparse.Namespace) -> int:
    from fvs.access.admin import AdminService
    from fvs.access.model import Role
    from fvs.cli.admin import open_admin
    from fvs.cli.common import local_operator
    from fvs.pki import init_pki, save_issued

    ca, _server = init_pki(args.dir, args.org, args.host)
    admin_cert = ca.issue("fvs-admin", args.org)
    save_issued(admin_cert, args.dir, "admin")
    # For health probes (Docker, Kubernetes): passes the TLS handshake, registered nowhere, so
    # every FVS service refuses it and only grpc.health.v1.Health answers.
    save_issued(ca.issue("fvs-health-probe", args.org), args.dir, "health")
    service: AdminService = open_admin(args.data_dir, args.dir)
    try:
        service.register_system(
            local_operator(),
            "",
            "admin",
            cert_pem=admin_cert.cert_pem,
            roles=frozenset({Role.ADMIN, Role.REGISTRY}),
        )
    finally:
        service.gate.close()
    print(f"CA, server, administrator and health-probe certificates written to {args.dir}")
    print(f"  serve with:  fvs serve --tls-dir {args.dir} --address HOST:PORT")
    print(
        f"  administrator certificate {args.dir}/admin.pem (fingerprint "
        f"{admin_cert.fingerprint[:16]}...) registered; keep ca.key offline"
    )
    return 0


def _audit_paths(data_dir: Path | None) -> tuple[Path, bytes]:
    from fvs.access.gate import audit_key, audit_path

    root = settings(store__data_dir=data_dir).store.data_dir
    path = audit_path(root)
    if not path.exists():
        raise SystemExit(f"error: no audit trail at {path}")
    return path, audit_key(root)


def _audit_verify(args: argparse.Namespace) -> int:
    from fvs.audit.log import verify_chain

    path, key = _audit_paths(args.data_dir)
    check = verify_chain(path, key)
    if check.ok:
        print(f"audit trail intact: {check.records} records")
        return 0
    print(
        f"audit trail BROKEN at line {check.first_bad_line} (record seq {check.first_bad_seq})"
        f": {check.problem}; {check.records} records before it are intact",
        file=sys.stderr,
    )
    return EXIT_REFUSED


def _time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _audit_export(args: argparse.Namespace) -> int:
    from fvs.audit.log import export

    path, _ = _audit_paths(args.data_dir)
    text = export(path, args.agency, _time(args.since), _time(args.until), args.format)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
