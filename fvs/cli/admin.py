"""`fvs admin`: agencies, purposes, permits, systems, conditions, usage, on the local data
directory. Every action is audited as the local operator (the OS user)."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fvs.cli.common import add_data_dir, local_operator, print_json, settings

if TYPE_CHECKING:
    from fvs.access.admin import AdminService


def open_admin(data_dir: Path | None, pki_dir: Path | None = None) -> AdminService:
    from fvs.access.admin import AdminService, read_ca_pem
    from fvs.access.gate import Gate
    from fvs.access.policy import ConsentRules
    from fvs.store.factory import open_access

    s = settings(store__data_dir=data_dir)
    access = open_access(s.store)
    try:
        gate = Gate.open(s.store.data_dir, ConsentRules(), s.store.location(), access)
    except BaseException:
        access.close()
        raise
    return AdminService(gate, read_ca_pem(pki_dir))


def _cmd(parent: Any, name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
    cmd: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
    add_data_dir(cmd)
    cmd.set_defaults(func=func)
    return cmd


def register(sub: Any) -> None:
    admin = sub.add_parser("admin", help="administer agencies, permits, purposes, systems")
    asub = admin.add_subparsers(dest="admin_command", required=True)

    agency = asub.add_parser("agency", help="licensed agencies").add_subparsers(
        dest="agency_command", required=True
    )
    add = _cmd(agency, "add", "register an agency", _agency_add)
    add.add_argument("--code", required=True, help="short id, e.g. BANK-A")
    add.add_argument("--kind", required=True, choices=["STATE", "PRIVATE"])
    add.add_argument("--name", required=True)
    add.add_argument("--registration", required=True, help="juristic person / agency number")
    add.add_argument("--mission", required=True, help="the mission it stated in its application")
    add.add_argument(
        "--supervisor",
        action="append",
        default=[],
        metavar="NAME=CONTACT",
        help="an appointed supervisor (clause 9); repeatable",
    )
    _cmd(agency, "show", "an agency with its permits and systems", _agency_show).add_argument(
        "code"
    )
    _cmd(agency, "list", "all agencies", _agency_list)

    purpose = asub.add_parser("purpose", help="purpose codes").add_subparsers(
        dest="purpose_command", required=True
    )
    padd = _cmd(purpose, "add", "define a purpose", _purpose_add)
    padd.add_argument("--code", required=True)
    padd.add_argument("--description", required=True)
    _cmd(purpose, "list", "all purposes", _purpose_list)

    permit = asub.add_parser("permit", help="permits").add_subparsers(
        dest="permit_command", required=True
    )
    grant = _cmd(permit, "grant", "grant a permit for purposes", _permit_grant)
    grant.add_argument("--agency", required=True)
    grant.add_argument("--purpose", action="append", required=True, help="repeatable")
    grant.add_argument("--valid-from", help="ISO 8601 (default now)")
    until = grant.add_mutually_exclusive_group(required=True)
    until.add_argument("--valid-until", help="ISO 8601")
    until.add_argument("--days", type=int, help="valid for this many days")
    grant.add_argument(
        "--service",
        action="append",
        choices=["FVS", "DIGITAL_ID"],
        help="a service the permit covers (repeatable; default FVS only)",
    )
    services = _cmd(permit, "services", "set the services a permit covers", _permit_services)
    services.add_argument("--permit", type=int, required=True)
    services.add_argument(
        "--service", action="append", required=True, choices=["FVS", "DIGITAL_ID"]
    )
    limit = _cmd(permit, "limit", "limit Verify calls under a permit (effective at once)", _limit)
    limit.add_argument("--permit", type=int, required=True)
    limit.add_argument("--rate", type=float, required=True, help="calls per second; 0 removes")
    limit.add_argument("--burst", type=int, default=1, help="calls allowed at once (default 1)")
    for action in ("suspend", "resume", "revoke"):
        change = _cmd(permit, action, f"{action} a permit (effective at once)", _permit_change)
        change.add_argument("--permit", type=int, required=True)
        change.add_argument("--reason", required=True)

    system = asub.add_parser("system", help="agency computer systems").add_subparsers(
        dest="system_command", required=True
    )
    sadd = _cmd(system, "add", "register a system and issue (or take) its certificate", _system_add)
    sadd.add_argument("--agency", required=True)
    sadd.add_argument("--name", required=True)
    how = sadd.add_mutually_exclusive_group()
    how.add_argument("--csr", type=Path, help="sign the agency's CSR (the key stays with it)")
    how.add_argument("--cert", type=Path, help="register a certificate issued by this CA")
    how.add_argument("--fingerprint", help="register by sha256 fingerprint of the certificate")
    sadd.add_argument("--out", type=Path, help="where to write the issued certificate (and key)")
    sadd.add_argument("--pki-dir", type=Path, help="the CA folder (to sign or check)")
    sadd.add_argument(
        "--registry",
        action="store_true",
        help="also grant Registry rights (Enroll, GetCitizen, DeleteEnrollment): for a test "
        "lab's system whose testers enrol synthetic citizens (`fvs console`)",
    )

    for verb in ("disable", "enable"):
        toggle = _cmd(
            system, verb, f"{verb} a registered system (effective at once)", _system_toggle
        )
        toggle.add_argument("--agency", required=True)
        toggle.add_argument("--name", required=True)

    operator = asub.add_parser("operator", help="operator certificates").add_subparsers(
        dest="operator_command", required=True
    )
    oadd = _cmd(operator, "add", "issue and register an operator certificate", _operator_add)
    oadd.add_argument("--name", required=True)
    oadd.add_argument("--role", action="append", required=True, choices=["admin", "registry"])
    oadd.add_argument("--out", type=Path, required=True)
    oadd.add_argument("--pki-dir", type=Path, required=True)

    cond = asub.add_parser("conditions", help="conditions of use").add_subparsers(
        dest="conditions_command", required=True
    )
    cset = _cmd(cond, "set", "new conditions, effective at once", _conditions_set)
    cset.add_argument("--version", required=True)
    cset.add_argument("--summary", required=True)
    _cmd(cond, "show", "the conditions in force", _conditions_show)

    use = _cmd(asub, "usage", "an agency's calls in a month (clause 6 metering)", _usage)
    use.add_argument("--agency", required=True)
    use.add_argument("--month", required=True, help="YYYY-MM")
    use.add_argument("--json", action="store_true")


@contextmanager
def _admin(args: argparse.Namespace, pki_dir: Path | None = None) -> Iterator[AdminService]:
    """The admin service on the command's data directory, closed afterwards."""
    svc = open_admin(args.data_dir, pki_dir)
    try:
        yield svc
    finally:
        svc.gate.close()


def _agency_add(args: argparse.Namespace) -> int:
    sups = []
    for item in args.supervisor:
        name, _, contact = item.partition("=")
        sups.append((name.strip(), contact.strip()))
    with _admin(args) as svc:
        agency = svc.add_agency(
            local_operator(), args.code, args.kind, args.name, args.registration, args.mission, sups
        )
    print(f"agency {agency.code} ({agency.kind.value}) registered")
    return 0


def _agency_show(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        agency, permits, systems = svc.agency(local_operator(), args.code)
    print_json(
        {
            "agency": {
                "code": agency.code,
                "kind": agency.kind.value,
                "name": agency.name,
                "registration_number": agency.registration_number,
                "mission": agency.mission,
                "supervisors": [s.__dict__ for s in agency.supervisors],
            },
            "permits": [
                {
                    "id": p.id,
                    "status": p.status.value,
                    "reason": p.status_reason,
                    "purposes": list(p.purposes),
                    "valid_from": p.valid_from,
                    "valid_until": p.valid_until,
                    "conditions": p.conditions_version,
                    "rate_per_s": p.rate_per_s,
                    "burst": p.burst,
                }
                for p in permits
            ],
            "systems": [
                {
                    "name": s.name,
                    "fingerprint": s.fingerprint,
                    "active": s.active,
                    "roles": sorted(r.value for r in s.roles),
                }
                for s in systems
            ],
        }
    )
    return 0


def _agency_list(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        for a in svc.agencies(local_operator()):
            print(f"{a.code}\t{a.kind.value}\t{a.name}")
    return 0


def _purpose_add(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        p = svc.add_purpose(local_operator(), args.code, args.description)
    print(f"purpose {p.code} defined")
    return 0


def _purpose_list(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        for p in svc.store.purposes():
            print(f"{p.code}\t{p.description}")
    return 0


def _when(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _permit_grant(args: argparse.Namespace) -> int:
    start = _when(args.valid_from) or dt.datetime.now(dt.UTC)
    until = _when(args.valid_until) or start + dt.timedelta(days=args.days)
    with _admin(args) as svc:
        p = svc.grant_permit(local_operator(), args.agency, args.purpose, start, until)
        if args.service:
            _set_services(svc, args, p.id, args.service)
    print(
        f"permit {p.id} granted to {p.agency_code} for {', '.join(p.purposes)}, valid "
        f"{p.valid_from.isoformat()} to {p.valid_until.isoformat()} (conditions "
        f"{p.conditions_version})"
    )
    return 0


def _limit(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        p = svc.set_rate_limit(local_operator(), args.permit, args.rate, args.burst)
    if p.rate_per_s is None:
        print(f"permit {p.id}: no rate limit")
    else:
        print(f"permit {p.id}: at most {p.rate_per_s:g} calls per second, burst {p.burst}")
    return 0


def _set_services(svc: AdminService, args: argparse.Namespace, permit: int, names: Any) -> Any:
    from fvs.digitalid.backends import open_card_store
    from fvs.digitalid.permits import set_permit_services

    cards = open_card_store(settings(store__data_dir=args.data_dir).store.location())
    try:
        return set_permit_services(svc, local_operator(), cards, permit, names)
    finally:
        cards.close()


def _permit_services(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        covered = _set_services(svc, args, args.permit, args.service)
    print(f"permit {args.permit} covers {', '.join(sorted(covered))}")
    return 0


def _permit_change(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        p = svc.change_permit(local_operator(), args.permit, args.permit_command, args.reason)
    print(f"permit {p.id} is now {p.status.value}")
    return 0


def _issuer(
    pki_dir: Path | None, out: Path | None, name: str, org: str, csr: Path | None
) -> Callable[[], bytes]:
    """A function that issues the certificate and writes it to ``out``; the admin service
    calls it only once its own checks passed. Nothing in ``out`` is ever overwritten."""
    from fvs.errors import ErrorCode, FvsError
    from fvs.pki import CertificateAuthority, save_issued

    if pki_dir is None or out is None:
        raise SystemExit("error: issuing a certificate needs --pki-dir and --out")

    def issue() -> bytes:
        taken = [p for p in (out / f"{name}.pem", out / f"{name}.key") if p.exists()]
        if taken:
            raise FvsError(
                ErrorCode.ALREADY_EXISTS,
                f"{taken[0]} exists; refusing to overwrite it (choose another --out)",
            )
        ca = CertificateAuthority.load(pki_dir)
        try:
            csr_pem = csr.read_bytes() if csr else None
        except OSError as exc:
            raise SystemExit(f"error: cannot read {csr}: {exc.strerror}") from None
        issued = ca.sign_csr(csr_pem, org) if csr_pem else ca.issue(name, org)
        cert_path, key_path = save_issued(issued, out, name)
        print(f"certificate {cert_path}" + (f", key {key_path}" if key_path else ""))
        return issued.cert_pem

    return issue


def _system_add(args: argparse.Namespace) -> int:
    from fvs.access.model import Role

    with _admin(args, args.pki_dir) as svc:
        cert_pem = args.cert.read_bytes() if args.cert else None
        fingerprint = args.fingerprint or ""
        issue = None
        if cert_pem is None and not fingerprint:
            issue = _issuer(args.pki_dir, args.out, args.name, args.agency, args.csr)
        roles = {Role.AGENCY, Role.REGISTRY} if args.registry else {Role.AGENCY}
        system = svc.register_system(
            local_operator(),
            args.agency,
            args.name,
            cert_pem=cert_pem,
            fingerprint_hex=fingerprint,
            roles=frozenset(roles),
            issue=issue,
        )
    rights = " with Registry rights" if args.registry else ""
    print(f"system {system.label} registered{rights} (fingerprint {system.fingerprint})")
    return 0


def _system_toggle(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        active = args.system_command == "enable"
        svc.set_system_active(local_operator(), args.agency, args.name, active)
    print(f"system {args.agency}/{args.name} {'enabled' if active else 'disabled'}")
    return 0


def _operator_add(args: argparse.Namespace) -> int:
    from fvs.access.model import Role

    roles = frozenset(Role.ADMIN if r == "admin" else Role.REGISTRY for r in args.role)
    with _admin(args, args.pki_dir) as svc:
        issue = _issuer(args.pki_dir, args.out, args.name, "FVS operators", None)
        system = svc.register_system(local_operator(), "", args.name, roles=roles, issue=issue)
    print(
        f"operator {system.name} registered with roles {', '.join(sorted(r.value for r in roles))}"
    )
    return 0


def _conditions_set(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        version = svc.set_conditions(local_operator(), args.version, args.summary)
    print(f"conditions {version} in force")
    return 0


def _conditions_show(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        print(svc.store.conditions_version())
    return 0


def _usage(args: argparse.Namespace) -> int:
    with _admin(args) as svc:
        counts = svc.usage(local_operator(), args.agency, args.month)
        guessing = _guessing_refusals(svc, args.agency, args.month)
    rows = [
        {
            "day": k[0],
            "system": k[1],
            "purpose": k[2],
            "operation": k[3],
            "outcome": k[4],
            "calls": n,
        }
        for k, n in sorted(counts.items())
    ]
    if args.json:
        print_json(rows)
    else:
        print(f"{'day':<11}{'system':<28}{'purpose':<13}{'operation':<18}{'outcome':<9}calls")
        for r in rows:
            print(
                f"{r['day']:<11}{r['system']:<28}{r['purpose']:<13}{r['operation']:<18}"
                f"{r['outcome']:<9}{r['calls']}"
            )
        print(f"total {sum(counts.values())} calls")
        if guessing:
            print(
                f"attribute checks refused for guessing (ATTRIBUTE_GUESSING): {guessing}"
                " -- for the agency's supervisors to look into"
            )
    return 0


def _guessing_refusals(svc: AdminService, agency: str, month: str) -> int:
    """Refusals of ``agency``'s attribute checks for guessing in ``month`` (issue 14)."""
    return sum(
        1
        for r in svc.gate.audit.records(agency)
        if r.get("agency") == agency
        and str(r.get("time", "")).startswith(month)
        and r.get("reason") == "ATTRIBUTE_GUESSING"
    )
