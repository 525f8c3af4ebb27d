"""The `fvs` command line: serve, enroll, verify, registry, model."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "127.0.0.1:50051"

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fvs", description="Face Verification Service")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC server (loopback by default)")
    serve.add_argument("--address", help="HOST:PORT to listen on (default 127.0.0.1:50051)")
    serve.add_argument("--data-dir", type=Path, help="registry data directory")
    serve.add_argument("--providers", choices=["auto", "cpu", "cuda", "tensorrt"])
    serve.add_argument("--pack", help="model pack id (manifest models/<pack>.json)")

    def client_args(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--server", default=DEFAULT_SERVER, help="HOST:PORT of an FVS server")
        cmd.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
        cmd.add_argument("--json", action="store_true", help="print the response as JSON")

    enroll = sub.add_parser("enroll", help="enrol a citizen's face from a photo")
    enroll.add_argument("--citizen-id", required=True)
    enroll.add_argument(
        "--create",
        action="store_true",
        help="create a minimal synthetic citizen record when none exists",
    )
    enroll.add_argument("photo", type=Path)
    client_args(enroll)

    verify = sub.add_parser("verify", help="verify a photo against a citizen's enrolled face")
    verify.add_argument("--citizen-id", required=True)
    verify.add_argument("--purpose", default="", help="permitted purpose code")
    verify.add_argument("--consent-ref", default="", help="the data owner's consent reference")
    verify.add_argument("--request-id", default="")
    verify.add_argument("photo", type=Path)
    client_args(verify)

    health = sub.add_parser("health", help="ask a server whether it is SERVING (exit 0 if so)")
    health.add_argument("--service", default="", help="a service name; empty: the whole server")
    client_args(health)

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
    seed.add_argument("--data-dir", type=Path)
    seed.add_argument("--pack", help="model pack whose id and size the templates take")
    show = rsub.add_parser("show", help="show a citizen record (never biometric data)")
    show.add_argument("citizen_id")
    client_args(show)
    delete = rsub.add_parser("delete-enrollment", help="erase a citizen's face templates")
    delete.add_argument("citizen_id")
    client_args(delete)

    model = sub.add_parser("model", help="model packs")
    msub = model.add_subparsers(dest="model_command", required=True)
    manifest = msub.add_parser("manifest", help="print a manifest for ONNX files you provide")
    manifest.add_argument("--id", required=True)
    manifest.add_argument("--detector", type=Path, required=True)
    manifest.add_argument("--recognizer", type=Path, required=True)
    manifest.add_argument(
        "--license", default="InsightFace pretrained weights: non-commercial research use only"
    )
    msub.add_parser("show", help="show the configured pack, verified")
    return p


def _settings(**overrides: Any) -> Any:
    from fvs.config import Settings

    settings = Settings()
    for section, field, value in (
        ("server", "address", overrides.get("address")),
        ("store", "data_dir", overrides.get("data_dir")),
        ("model", "providers", overrides.get("providers")),
        ("model", "pack", overrides.get("pack")),
    ):
        if value is not None:
            setattr(getattr(settings, section), field, value)
    return settings


def _face_line(face: Any) -> str:
    b = face.box
    return (
        f"face box ({b.x_min:.0f}, {b.y_min:.0f})-({b.x_max:.0f}, {b.y_max:.0f}), "
        f"detection score {face.detection_score:.3f}"
    )


def _print_json(message: Any) -> None:
    from google.protobuf.json_format import MessageToDict

    print(
        json.dumps(
            MessageToDict(message, preserving_proto_field_name=True), ensure_ascii=False, indent=2
        )
    )


def _read_photo(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None


def _run_client(args: argparse.Namespace) -> int:
    from fvs.api.client import CallFailedError, FvsClient

    try:
        with FvsClient(args.server, timeout_s=args.timeout) as client:
            if args.command == "enroll":
                er = client.enroll(args.citizen_id, _read_photo(args.photo), args.create)
                if args.json:
                    _print_json(er)
                else:
                    created = " (citizen record created)" if er.citizen_created else ""
                    print(
                        f"enrolled {er.citizen_id} template v{er.template_version} "
                        f"with {er.model}{created}"
                    )
                    print(_face_line(er.face))
            elif args.command == "verify":
                vr = client.verify(
                    args.citizen_id,
                    _read_photo(args.photo),
                    args.purpose,
                    args.consent_ref,
                    request_id=args.request_id,
                )
                if args.json:
                    _print_json(vr)
                else:
                    print(
                        f"match score {vr.match_score:.2f} %  cosine {vr.similarity:.4f}  "
                        f"model {vr.model}  template v{vr.template_version}"
                    )
                    print(_face_line(vr.probe_face))
                    print(f"request id {vr.request_id}  ({vr.timings.total_ms:.1f} ms)")
            elif args.command == "health":
                status = client.health(args.service)
                print(status)
                return 0 if status == "SERVING" else EXIT_UNAVAILABLE
            elif args.registry_command == "show":
                _print_json(client.get_citizen(args.citizen_id))
            else:
                dr = client.delete_enrollment(args.citizen_id)
                print(f"erased {dr.templates_deleted} template(s) of {dr.citizen_id}")
    except CallFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return (
            EXIT_UNAVAILABLE if exc.code in {"UNAVAILABLE", "DEADLINE_EXCEEDED"} else EXIT_REFUSED
        )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from fvs.api.server import serve
    from fvs.errors import ConfigError, FvsError

    settings = _settings(
        address=args.address, data_dir=args.data_dir, providers=args.providers, pack=args.pack
    )
    try:
        asyncio.run(serve(settings))
    except (ConfigError, FvsError, OSError) as exc:
        print(f"error: cannot serve: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return 0


def _seed(args: argparse.Namespace) -> int:
    from fvs.runtime.manifest import load_manifest
    from fvs.store.sqlite import SqliteStore
    from fvs.store.synthetic import random_templates, synthetic_citizens

    if args.count < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings(data_dir=args.data_dir, pack=args.pack)
    start = time.perf_counter()
    store = SqliteStore(settings.store.data_dir)
    citizens = list(synthetic_citizens(args.count, args.seed))
    templates = None
    model_id = ""
    if args.with_templates:
        manifest, _ = load_manifest(settings.model.models_dir, settings.model.pack)
        model_id = manifest.model_id
        vectors = random_templates(args.count, manifest.recognizer.embedding_size, args.seed)
        templates = zip((c.citizen_id for c in citizens), vectors, strict=True)
    inserted = store.add_citizens(citizens, templates, model_id)
    total = store.count_citizens()
    store.close()
    print(
        f"seeded {inserted} new synthetic citizens (of {args.count}; {total} in "
        f"{settings.store.data_dir}) in {time.perf_counter() - start:.1f} s"
        + (f", templates for model {model_id}" if model_id else "")
    )
    return 0


def _model(args: argparse.Namespace) -> int:
    from fvs.runtime.manifest import load_manifest, read_verified, sha256_file

    if args.model_command == "manifest":
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
    settings = _settings()
    man, folder = load_manifest(settings.model.models_dir, settings.model.pack)
    for spec in (man.detector, man.recognizer):
        read_verified(folder, spec.file, spec.sha256)
    print(f"{man.id}: model id {man.model_id}, files in {folder} (sha256 verified)")
    print(f"licence: {man.license}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from fvs.errors import ConfigError, FvsError

    try:
        if args.command == "serve":
            return _serve(args)
        if args.command in {"enroll", "verify", "health"} or (
            args.command == "registry" and args.registry_command != "seed"
        ):
            return _run_client(args)
        if args.command == "registry":
            return _seed(args)
        return _model(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FvsError as exc:
        print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
