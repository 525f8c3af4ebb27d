"""Client commands: enroll, verify, health, registry show / delete-enrollment /
search-duplicates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fvs.cli.common import DEFAULT_SERVER, EXIT_REFUSED, EXIT_UNAVAILABLE, report_error

# the fields of fvs.v1.Attributes, one flag each (--first-name-th ...)
ATTRIBUTE_FLAGS = (
    "first_name_th",
    "last_name_th",
    "first_name_en",
    "last_name_en",
    "birth_date",
    "laser_code",
    "province",
    "district",
)


def client_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--server", default=DEFAULT_SERVER, help="HOST:PORT of an FVS server")
    cmd.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    cmd.add_argument("--json", action="store_true", help="print the response as JSON")
    tls = cmd.add_argument_group("mutual TLS (omit all three for an --insecure dev server)")
    tls.add_argument("--ca", type=Path, help="the deployment's CA certificate (ca.pem)")
    tls.add_argument("--cert", type=Path, help="this system's certificate")
    tls.add_argument("--key", type=Path, help="this system's private key")
    cmd.set_defaults(func=run)


def register(sub: Any) -> None:
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
    verify.add_argument("--purpose", required=True, help="permitted purpose code, e.g. KYC")
    verify.add_argument(
        "--consent-ref",
        required=True,
        help="reference of the data owner's consent (given now unless "
        "--consent-time says otherwise)",
    )
    verify.add_argument("--consent-time", help="when consent was given (ISO 8601, UTC if no zone)")
    verify.add_argument("--request-id", default="")
    for name in ATTRIBUTE_FLAGS:  # the combined KYC call: attributes checked as well
        verify.add_argument(f"--{name.replace('_', '-')}", dest=name, default="")
    verify.add_argument("photo", type=Path)
    client_args(verify)

    attrs = sub.add_parser(
        "verify-attributes",
        help="Digital ID: check claimed attributes against the registry (MATCH / NO_MATCH only)",
    )
    attrs.add_argument("--citizen-id", required=True)
    attrs.add_argument("--purpose", required=True, help="permitted purpose code, e.g. KYC")
    attrs.add_argument("--consent-ref", required=True, help="reference of the owner's consent")
    attrs.add_argument("--consent-time", help="when consent was given (ISO 8601)")
    attrs.add_argument("--request-id", default="")
    for name in ATTRIBUTE_FLAGS:
        attrs.add_argument(f"--{name.replace('_', '-')}", dest=name, default="")
    client_args(attrs)

    health = sub.add_parser("health", help="ask a server whether it is SERVING (exit 0 if so)")
    health.add_argument("--service", default="", help="a service name; empty: the whole server")
    client_args(health)


def register_registry(rsub: Any) -> None:
    show = rsub.add_parser("show", help="show a citizen record (never biometric data)")
    show.add_argument("citizen_id")
    client_args(show)
    delete = rsub.add_parser("delete-enrollment", help="erase a citizen's face templates")
    delete.add_argument("citizen_id")
    client_args(delete)
    search = rsub.add_parser(
        "search-duplicates",
        help="the enrolled citizens most like a photo or a citizen's face (1:N, operators)",
    )
    probe = search.add_mutually_exclusive_group(required=True)
    probe.add_argument("--image", type=Path, help="a photo")
    probe.add_argument("--citizen-id", help="an enrolled citizen (left out of the answer)")
    search.add_argument("--k", type=int, default=0, help="how many (1..100; default 10)")
    client_args(search)


def _tls(args: argparse.Namespace) -> Any:
    from fvs.api.client import ClientTls

    given = [args.ca, args.cert, args.key]
    if not any(given):
        return None
    if not all(given):
        raise SystemExit("error: --ca, --cert and --key go together")
    try:
        return ClientTls.from_files(args.ca, args.cert, args.key)
    except OSError as exc:
        raise SystemExit(f"error: cannot read TLS files: {exc}") from None


def _read_photo(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None


def _consent_time(value: str | None) -> Any:
    import datetime as dt

    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"error: --consent-time {value!r} is not ISO 8601") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _face_line(face: Any) -> str:
    b = face.box
    return (
        f"face box ({b.x_min:.0f}, {b.y_min:.0f})-({b.x_max:.0f}, {b.y_max:.0f}), "
        f"detection score {face.detection_score:.3f}"
    )


def _print_message(message: Any) -> None:
    from google.protobuf.json_format import MessageToDict

    print(
        json.dumps(
            MessageToDict(message, preserving_proto_field_name=True), ensure_ascii=False, indent=2
        )
    )


def _claimed(args: argparse.Namespace) -> dict[str, str]:
    return {name: getattr(args, name) for name in ATTRIBUTE_FLAGS if getattr(args, name)}


def _print_attributes(claimed: dict[str, str], answer: Any) -> None:
    for name in claimed:
        print(f"{name:14s} {_result_name(getattr(answer.results, name))}")
    print(f"card {_card_name(answer.card_status, answer.card_status_reason)}  alive {answer.alive}")


def _result_name(value: int) -> str:
    from fvs.api.v1 import attributes_pb2

    return str(attributes_pb2.AttributeResult.Name(value))


def _card_name(status: int, reason: int) -> str:
    from fvs.api.v1 import attributes_pb2

    name = str(attributes_pb2.IdCardStatus.Name(status)).removeprefix("ID_CARD_")
    if reason:
        name += " (" + str(attributes_pb2.IdCardStatusReason.Name(reason)).removeprefix("ID_CARD_")
        name += ")"
    return name


def run(args: argparse.Namespace) -> int:
    from fvs.api.client import CallFailedError, FvsClient

    try:
        with FvsClient(args.server, timeout_s=args.timeout, tls=_tls(args)) as c:
            return _call(c, args)
    except CallFailedError as exc:
        report_error(args, exc.code, exc.reason, exc.message, exc.metadata)
        unavailable = exc.code in {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL"}
        return EXIT_UNAVAILABLE if unavailable else EXIT_REFUSED


def _call(c: Any, args: argparse.Namespace) -> int:
    if args.command == "enroll":
        er = c.enroll(args.citizen_id, _read_photo(args.photo), args.create)
        if args.json:
            _print_message(er)
        else:
            created = " (citizen record created)" if er.citizen_created else ""
            print(
                f"enrolled {er.citizen_id} template v{er.template_version} with {er.model}{created}"
            )
            print(_face_line(er.face))
            for m in er.duplicates:
                print(
                    f"flagged: likely duplicate of {m.citizen_id} (score {m.score:.2f} %, cosine "
                    f"{m.similarity:.4f}); case {er.duplicate_case_id}"
                )
    elif args.command == "verify":
        vr = c.verify(
            args.citizen_id,
            _read_photo(args.photo),
            args.purpose,
            args.consent_ref,
            _consent_time(args.consent_time),
            request_id=args.request_id,
            claimed=_claimed(args) or None,
        )
        if args.json:
            _print_message(vr)
        else:
            print(
                f"match score {vr.match_score:.2f} %  cosine {vr.similarity:.4f}  "
                f"model {vr.model}  template v{vr.template_version}"
            )
            print(_face_line(vr.probe_face))
            print(f"request id {vr.request_id}  ({vr.timings.total_ms:.1f} ms)")
            if vr.HasField("attributes"):
                _print_attributes(_claimed(args), vr.attributes)
    elif args.command == "verify-attributes":
        claimed = _claimed(args)
        ar = c.verify_attributes(
            args.citizen_id,
            claimed,
            args.purpose,
            args.consent_ref,
            _consent_time(args.consent_time),
            request_id=args.request_id,
        )
        if args.json:
            _print_message(ar)
        else:
            _print_attributes(claimed, ar)
            print(f"request id {ar.request_id}")
        return 0 if ar.all_match else EXIT_REFUSED
    elif args.command == "health":
        status = c.health(args.service)
        print(status)
        return 0 if status == "SERVING" else EXIT_UNAVAILABLE
    elif args.registry_command == "show":
        _print_message(c.get_citizen(args.citizen_id))
    elif args.registry_command == "search-duplicates":
        image = _read_photo(args.image) if args.image is not None else None
        sr = c.search_duplicates(args.k, image=image, citizen_id=args.citizen_id)
        if args.json:
            _print_message(sr)
        else:
            for m in sr.candidates:
                mark = "  DUPLICATE" if m.duplicate else ""
                print(
                    f"{m.citizen_id} v{m.template_version}  score {m.score:.2f} %  "
                    f"cosine {m.similarity:.4f}{mark}"
                )
            print(f"({len(sr.candidates)} candidate(s), {sr.model}, max_fmr {sr.max_fmr:g})")
    else:
        dr = c.delete_enrollment(args.citizen_id)
        print(f"erased {dr.templates_deleted} template(s) of {dr.citizen_id}")
    return 0
