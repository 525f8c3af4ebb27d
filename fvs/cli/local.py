"""Commands that work on this machine: serve, registry seed, model, pki, audit."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from fvs.cli import client, dedup, store
from fvs.cli.common import EXIT_REFUSED, EXIT_UNAVAILABLE, add_data_dir, settings


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
    serve.add_argument(
        "--metrics-address",
        help="HOST:PORT for Prometheus metrics (GET /metrics); off unless set",
    )
    serve.add_argument(
        "--otlp-endpoint",
        help="OTLP/gRPC endpoint for OpenTelemetry spans, e.g. http://127.0.0.1:4317; off "
        "unless set",
    )
    serve.add_argument(
        "--grace",
        type=float,
        help="seconds in-flight calls get to finish after SIGTERM (default 5)",
    )
    serve.add_argument(
        "--reuse-port",
        action="store_true",
        help="share the port with other FVS processes (multi-process serving); without it a "
        "taken address is an error",
    )
    serve.add_argument(
        "--processes",
        type=int,
        help="serving processes sharing the port (SO_REUSEPORT), each with its own model "
        "and index; state is shared through the store (default $FVS_SERVER__PROCESSES or 1)",
    )
    serve.set_defaults(func=_serve)


def register(sub: Any) -> None:
    registry = sub.add_parser("registry", help="the synthetic civil-registration store")
    rsub = registry.add_subparsers(dest="registry_command", required=True)
    store.register_registry(rsub)
    dedup.register_registry(rsub)
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
    quant = msub.add_parser(
        "quantize",
        help="make an int8 variant of a pack's recogniser, or an fp16 variant of both its "
        "networks (for CUDA/TensorRT): files and manifest in --out",
    )
    quant.add_argument("--pack", default="buffalo_sc", help="the fp32 pack to start from")
    quant.add_argument("--id", required=True, help="id of the new pack, e.g. buffalo_sc_int8")
    quant.add_argument("--mode", choices=["static", "dynamic", "fp16"], default="static")
    quant.add_argument(
        "--calibration-dir",
        type=Path,
        help="photos whose aligned faces calibrate activation ranges (static); never the "
        "photos you will evaluate the variant on",
    )
    quant.add_argument("--limit", type=int, default=200, help="calibration faces used")
    quant.add_argument(
        "--out", type=Path, help="models folder to write to (default: the configured models_dir)"
    )
    quant.set_defaults(func=_model_quantize)

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

    receipt = sub.add_parser("receipt", help="signed verification receipts")
    rsub2 = receipt.add_subparsers(dest="receipt_command", required=True)
    rverify = rsub2.add_parser(
        "verify",
        help="check a receipt offline with the service's public key (exit 0 when genuine)",
    )
    rverify.add_argument(
        "file",
        type=Path,
        help="JSON holding the receipt: the output of `fvs verify --json`, or its receipt "
        "object (payload and signature in base64)",
    )
    rverify.add_argument(
        "--public-key",
        type=Path,
        required=True,
        help="the service's receipt public key (receipt-public.pem from `fvs pki init`)",
    )
    rverify.add_argument("--image", type=Path, help="also check the probe photo's hash")
    rverify.add_argument("--json", action="store_true", help="print the claims as JSON")
    rverify.set_defaults(func=_receipt_verify)

    audit = sub.add_parser("audit", help="the audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    verify = asub.add_parser(
        "verify", help="check every record, the order, and the end against the anchored head"
    )
    _audit_location(verify)
    verify.set_defaults(func=_audit_verify)
    export = asub.add_parser("export", help="one agency's records, for its supervisors")
    export.add_argument("--agency", required=True)
    export.add_argument("--since", help="ISO 8601 time (inclusive)")
    export.add_argument("--until", help="ISO 8601 time (exclusive)")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--out", type=Path, help="file to write (default stdout)")
    export.add_argument(
        "--authority",
        action="store_true",
        help="keep the global citizen HMAC (the authority's own tools); by default citizens "
        "carry this agency's pseudonym, which no other agency's export shares",
    )
    _audit_location(export)
    export.set_defaults(func=_audit_export)
    repair = asub.add_parser(
        "repair",
        help="set a torn last record aside (kept as evidence) and re-anchor the chain",
    )
    repair.add_argument(
        "--accept-loss",
        action="store_true",
        help="also re-anchor when records are missing from the end or the anchor is missing "
        "(the loss is recorded in the trail); an edited chain is never repaired",
    )
    _audit_location(repair)
    repair.set_defaults(func=_audit_repair)


def _audit_location(cmd: argparse.ArgumentParser) -> None:
    """--data-dir (the chain key stays there) and --store (where the trail lives)."""
    add_data_dir(cmd)


def _serve(args: argparse.Namespace) -> int:
    from fvs.errors import ConfigError

    s = settings(
        server__address=args.address,
        store__data_dir=args.data_dir,
        model__providers=args.providers,
        model__pack=args.pack,
        access__tls_dir=args.tls_dir,
        access__insecure=args.insecure or None,
        observability__metrics_address=args.metrics_address,
        observability__otlp_endpoint=args.otlp_endpoint,
        server__grace_s=args.grace,
        server__reuse_port=args.reuse_port or None,
        server__processes=args.processes,
    )
    if s.server.processes < 1:
        raise ConfigError(f"--processes must be at least 1, not {s.server.processes}")
    try:
        if s.server.processes > 1:  # the supervisor loads neither grpc nor the model
            from fvs.api.group import run_group

            return run_group(s, args.log_level, args.log_format)
        from fvs.api.server import serve

        asyncio.run(serve(s))
    except OSError as exc:
        print(f"error: cannot serve: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
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


def _model_quantize(args: argparse.Namespace) -> int:
    import random

    import numpy as np

    from fvs.errors import FvsError
    from fvs.evaluation.dataset import IMAGE_SUFFIXES
    from fvs.pipeline.align import align
    from fvs.pipeline.detector import landmarks_array
    from fvs.pipeline.embedder import Embedder
    from fvs.pipeline.pipeline import FacePipeline
    from fvs.runtime.manifest import load_manifest
    from fvs.runtime.quantize import write_variant

    s = settings(model__pack=args.pack, model__providers="cpu")
    source, folder = load_manifest(s.model.models_dir, args.pack)
    out_dir: Path = args.out or s.model.models_dir
    calibration = None
    if args.mode == "static":
        if args.calibration_dir is None:
            raise SystemExit("--mode static needs --calibration-dir")
        photos = sorted(
            p for p in args.calibration_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )
        random.Random(0).shuffle(photos)
        s.pipeline.batching.enabled = False
        pipeline = FacePipeline.load(s.model, s.pipeline)
        crops: list[np.ndarray] = []
        for photo in photos:
            if len(crops) >= args.limit:
                break
            try:
                image = pipeline.decode(photo.read_bytes())
                face = pipeline.find_subject(image)
            except FvsError:
                continue  # no usable face: not a calibration sample
            crops.append(align(image, landmarks_array(face), source.recognizer.input_size))
        pipeline.close()
        if not crops:
            raise SystemExit(f"no face found in {args.calibration_dir}")
        calibration = Embedder.preprocess_with(source.recognizer, crops)
        print(f"calibrating on {len(crops)} faces from {args.calibration_dir}")
    manifest = write_variant(source, folder, out_dir, args.id, args.mode, calibration)
    pack_dir = out_dir / args.id
    print(
        f"wrote {out_dir / args.id}.json and {pack_dir}/ (recogniser sha256 "
        f"{manifest.recognizer.sha256[:12]}); calibrate it before trusting its score"
    )
    return 0


def _pki_init(args: argparse.Namespace) -> int:
    from fvs.access.admin import AdminService
    from fvs.access.model import Role
    from fvs.cli.admin import open_admin
    from fvs.cli.common import local_operator
    from fvs.pki import CA_DIR, RECEIPT_PUBLIC, clients_dir, init_pki, save_issued, server_dir

    ca, _server = init_pki(args.dir, args.org, args.host)
    clients = clients_dir(args.dir)
    admin_cert = ca.issue("fvs-admin", args.org)
    save_issued(admin_cert, clients, "admin")
    # For health probes (Docker, Kubernetes): passes the TLS handshake, registered nowhere, so
    # every FVS service refuses it and only grpc.health.v1.Health answers.
    save_issued(ca.issue("fvs-health-probe", args.org), server_dir(args.dir), "health")
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
    serving = server_dir(args.dir)
    print(f"PKI written to {args.dir}:")
    print(f"  {args.dir / CA_DIR}/        the CA (ca.key): keep it OFFLINE, never on the server")
    print(f"  {serving}/    all the server needs (certificate, keys, ca.pem, health probe)")
    print(f"  {clients}/   the administrator's certificate and key, with ca.pem")
    print(f"  {args.dir / RECEIPT_PUBLIC}   receipt public key, for agencies")
    print(f"  serve with:  fvs serve --tls-dir {serving} --address HOST:PORT")
    print(
        f"  administrator certificate {clients}/admin.pem (fingerprint "
        f"{admin_cert.fingerprint[:16]}...) registered"
    )
    return 0


def _open_audit(args: argparse.Namespace) -> Any:
    """The trail named by --store / --data-dir, and its key; exits when there is none."""
    from fvs.audit.trail import audit_key, log_dir
    from fvs.errors import FvsError

    s = settings(store__data_dir=args.data_dir)  # --store reaches it through settings()
    try:
        location = s.store.location()
    except FvsError as exc:
        raise SystemExit(f"error: {exc.message}") from exc
    if location.backend == "sqlite":
        root = location.sqlite_dir or s.store.data_dir
        if not (log_dir(root) / "audit.jsonl").exists() and args.audit_command != "repair":
            from fvs.audit.trail import head_path

            if not head_path(root).exists():
                raise SystemExit(f"error: no audit trail in {root}")
    key = audit_key(s.store.data_dir)
    return location, s.store.data_dir, key


def _audit_verify(args: argparse.Namespace) -> int:
    from fvs.audit.log import verify_chain
    from fvs.audit.trail import head_path, log_dir, open_trail

    location, data_dir, key = _open_audit(args)
    if location.backend == "sqlite":
        root = location.sqlite_dir or data_dir
        # Read only: opening a trail would set a torn tail aside, and verify changes nothing.
        check = verify_chain(log_dir(root) / "audit.jsonl", key, head_path(root))
    else:
        trail = open_trail(location, data_dir, key)
        try:
            check = trail.verify()
        finally:
            trail.close()
    if check.ok:
        print(check.describe())
        return 0
    print(check.describe(), file=sys.stderr)
    return EXIT_REFUSED


def _audit_repair(args: argparse.Namespace) -> int:
    from fvs.audit.log import repair
    from fvs.audit.trail import head_path, log_dir, open_trail, repair_record

    location, data_dir, key = _open_audit(args)
    if location.backend == "sqlite":
        root = location.sqlite_dir or data_dir
        ok, what = repair(log_dir(root) / "audit.jsonl", key, head_path(root), args.accept_loss)
    else:
        from fvs.audit.pg import PgAuditTrail

        pg = open_trail(location, data_dir, key)
        assert isinstance(pg, PgAuditTrail)
        try:
            ok, what = pg.repair(args.accept_loss)
        finally:
            pg.close()
    if not ok:
        print(f"error: {what}", file=sys.stderr)
        return EXIT_REFUSED
    if what != "nothing to repair":
        trail = open_trail(location, data_dir, key)
        try:
            trail.append(repair_record(what, {"accept_loss": str(args.accept_loss).lower()}))
            check = trail.verify()
        finally:
            trail.close()
        print(f"repaired: {what}; the repair is recorded in the trail")
        print(check.describe())
        return 0 if check.ok else EXIT_REFUSED
    print(what)
    return 0


def _time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _audit_export(args: argparse.Namespace) -> int:
    from fvs.audit.trail import export, open_trail

    location, data_dir, key = _open_audit(args)
    trail = open_trail(location, data_dir, key)
    try:
        text = export(
            trail.records(args.agency),
            args.agency,
            _time(args.since),
            _time(args.until),
            args.format,
            key=key,
            authority=args.authority,
        )
    finally:
        trail.close()
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _receipt_verify(args: argparse.Namespace) -> int:
    import base64
    import binascii
    import hashlib

    from fvs.errors import ErrorCode, FvsError
    from fvs.receipts import check, load_public_key

    def bad(message: str) -> FvsError:
        return FvsError(ErrorCode.INVALID_REQUEST, message)

    try:
        document = json.loads(args.file.read_text(encoding="utf-8"))
        key = load_public_key(args.public_key.read_bytes())
    except OSError as exc:
        raise SystemExit(f"error: cannot read {exc.filename}: {exc.strerror}") from None
    except ValueError:
        raise bad(f"{args.file} is not JSON") from None
    found = document.get("receipt", document) if isinstance(document, dict) else None
    if not isinstance(found, dict) or "payload" not in found or "signature" not in found:
        raise bad(f"{args.file} holds no receipt (payload and signature)")
    try:
        payload = base64.b64decode(str(found["payload"]), validate=True)
        signature = base64.b64decode(str(found["signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise bad("the receipt's payload and signature must be base64") from None
    claims = check(payload, signature, key)
    if args.image is not None:
        try:
            digest = hashlib.sha256(args.image.read_bytes()).hexdigest()
        except OSError as exc:
            raise SystemExit(f"error: cannot read {args.image}: {exc.strerror}") from None
        if digest != claims.get("image_sha256"):
            raise FvsError(
                ErrorCode.INVALID_REQUEST,
                f"the receipt is genuine but was issued for another photo than {args.image}",
                problem="other_image",
            )
    if args.json:
        print(json.dumps({"valid": True, "claims": claims}, ensure_ascii=False, indent=2))
    else:
        print(
            f"receipt GENUINE (key {claims.get('key_id')}): at {claims.get('time')} FVS "
            f"answered {claims.get('agency')} ({claims.get('system')}) request "
            f"{claims.get('request_id')} with match score {claims.get('match_score')} "
            f"(model {claims.get('model')}, mapping {claims.get('score_mapping')})"
        )
    return 0
