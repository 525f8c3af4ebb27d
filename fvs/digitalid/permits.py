"""Which services (FVS, DIGITAL_ID) a permit covers: set by an administrator, audited."""

from __future__ import annotations

from collections.abc import Iterable

from fvs.access.admin import AdminService
from fvs.access.model import SERVICES, Caller
from fvs.digitalid.store import IdCardStore
from fvs.errors import ErrorCode, FvsError


def set_permit_services(
    admin: AdminService,
    caller: Caller,
    cards: IdCardStore,
    permit_id: int,
    services: Iterable[str],
) -> frozenset[str]:
    """Make ``permit_id`` cover exactly ``services``; audited as Admin/SetPermitServices."""
    wanted = frozenset(s.strip().upper() for s in services)

    def act() -> frozenset[str]:
        if not wanted or not wanted <= SERVICES:
            raise FvsError(
                ErrorCode.INVALID_REQUEST,
                f"services must be one or more of {', '.join(sorted(SERVICES))}",
                field="services",
            )
        admin.store.permit(permit_id)  # PERMIT_NOT_FOUND
        cards.set_permit_services(permit_id, wanted)
        return wanted

    details = {"permit": str(permit_id), "services": ",".join(sorted(wanted))}
    result: frozenset[str] = admin._run(caller, "SetPermitServices", details, act)
    return result
