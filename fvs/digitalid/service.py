"""VerifyAttributes, transport-neutral: validate the claim, refuse a guesser, compare, count.

The answer holds per attribute MATCH / NO_MATCH / NOT_PROVIDED, the card's status and whether
the person is alive, never a value of the record.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fvs import citizen_id as cid
from fvs.digitalid import match
from fvs.digitalid.model import (
    AttributeVerdict,
    CardFacts,
    CardStatus,
    CardStatusReason,
    ClaimedAttributes,
)
from fvs.digitalid.store import IdCardStore
from fvs.digitalid.synthetic import card_for
from fvs.errors import ErrorCode, FvsError
from fvs.store.base import CitizenStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuessingLimit:
    """At most ``max_no_match`` NO_MATCH answers per (agency, citizen) in ``window_s``."""

    max_no_match: int = 10
    window_s: float = 24 * 3600.0


class DigitalIdService:
    """Blocking: callers run it off their event loop."""

    def __init__(
        self,
        citizens: CitizenStore,
        cards: IdCardStore,
        citizen_hash: Callable[[str], str],
        limit: GuessingLimit = GuessingLimit(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.citizens = citizens
        self.cards = cards
        self.citizen_hash = citizen_hash
        self.limit = limit
        self.clock = clock

    def card(self, citizen_id: str, synthetic: bool) -> CardFacts | None:
        """The citizen's card; a synthetic citizen without one (``create_if_missing``, or a
        registry seeded before Digital ID existed) gets its seed-0 card now."""
        card = self.cards.card(citizen_id)
        if card is None and synthetic:
            view = self.citizens.get_citizen(citizen_id)
            if view is not None:
                self.cards.add_cards([card_for(view.citizen)])
                card = self.cards.card(citizen_id)
        return card

    def precheck(self, agency: str, citizen_id: str, claimed: ClaimedAttributes) -> dict[str, str]:
        """The cheap checks, before anything is compared (or a face model runs): the citizen
        ID, every claimed attribute, and the guessing limit. Returns the provided attributes."""
        cid.validate(citizen_id)
        provided = match.validate(claimed)
        self._check_guessing(agency, self.citizen_hash(citizen_id), self.clock())
        return provided

    def _check_guessing(self, agency: str, key: str, now: float) -> None:
        self._refuse_if_over(
            self.cards.no_matches_since(agency, key, now - self.limit.window_s), now
        )

    def _refuse_if_over(self, recent: list[float], now: float) -> None:
        if len(recent) >= self.limit.max_no_match:
            # the window frees a slot when the oldest counted answer leaves it
            frees_at = recent[len(recent) - self.limit.max_no_match] + self.limit.window_s
            retry_s = max(1.0, math.ceil(frees_at - now))
            error = FvsError(
                ErrorCode.ATTRIBUTE_GUESSING,
                f"{self.limit.max_no_match} or more attribute checks of this citizen by this"
                f" agency did not match in the last {self.limit.window_s / 3600:g} h; further"
                " checks are refused until the window frees",
                limit=str(self.limit.max_no_match),
                window_s=str(int(self.limit.window_s)),
                retry_after_s=str(int(retry_s)),
            )
            error.retry_after_s = retry_s
            raise error

    def verify_attributes(
        self, agency: str, citizen_id: str, claimed: ClaimedAttributes, request_id: str
    ) -> AttributeVerdict:
        """Compare ``claimed`` with the record and count its NO_MATCH answers."""
        provided = self.precheck(agency, citizen_id, claimed)
        key = self.citizen_hash(citizen_id)
        now = self.clock()
        view = self.citizens.get_citizen(citizen_id)
        if view is None:
            raise FvsError(ErrorCode.CITIZEN_NOT_FOUND, "no citizen with this ID")
        card = self.card(citizen_id, view.citizen.synthetic)
        results = match.compare(provided, view.citizen, card)
        verdict = AttributeVerdict(
            results=results,
            card_status=card.status_on(dt.date.today()) if card else CardStatus.NOT_ISSUED,
            card_status_reason=card.status_reason if card else CardStatusReason.NONE,
            alive=card.alive if card else True,
            request_id=request_id,
        )

        def decide(recent: list[float]) -> int:
            # checked again under the pair's lock: a racing call may have used the last slot
            self._refuse_if_over(recent, now)
            return verdict.no_matches

        self.cards.record_no_matches(agency, key, now - self.limit.window_s, now, decide)
        return verdict
