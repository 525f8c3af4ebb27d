"""Whether the server can answer calls right now: the audit trail and the stores.

Every call fails closed when the audit trail cannot be written (AUDIT_UNAVAILABLE) or a store
cannot be read (STORE_UNAVAILABLE), so health must not say SERVING then. Two ways in:

- a call that fails with one of those reasons reports it at once (:meth:`Readiness.failed`);
- a periodic probe (every ``server.health_probe_s``) checks both without writing anything,
  and reports SERVING again once both are back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fvs.errors import ErrorCode

log = logging.getLogger(__name__)

UNAVAILABLE_REASONS = frozenset({ErrorCode.AUDIT_UNAVAILABLE, ErrorCode.STORE_UNAVAILABLE})
MIN_FREE_BYTES = 1024 * 1024  # an audit trail on a full disk fails closed on the next call
PROBE_CITIZEN = "0000000000001"  # an ID no citizen has: an indexed lookup that finds nothing


@dataclass(frozen=True)
class Probe:
    ok: bool
    problem: str = ""


def probe_audit(audit: Any) -> Probe:
    """The audit trail's own health state when it has one; else what can be checked without
    writing: not failed or closed, the file still the one open, room left on its disk."""
    healthy = getattr(audit, "healthy", None)
    if healthy is not None:
        state = healthy() if callable(healthy) else healthy
        if not state:
            return Probe(False, "the audit trail reports itself unhealthy")
    if getattr(audit, "_failed", False):
        return Probe(False, "an earlier flush of the audit trail failed")
    fd = getattr(audit, "_fd", None)
    path = getattr(audit, "path", None)
    if path is None:
        return Probe(True)
    try:
        on_disk = os.stat(path)
        if fd is not None:
            if fd < 0:
                return Probe(False, "the audit trail is closed")
            if os.fstat(fd).st_ino != on_disk.st_ino:
                return Probe(False, f"{path} was removed or replaced")
        space = os.statvfs(path)
        if space.f_bavail * space.f_frsize < MIN_FREE_BYTES:
            return Probe(False, f"less than {MIN_FREE_BYTES} bytes free for {path}")
        if not os.access(path, os.W_OK):
            return Probe(False, f"{path} is not writable")
    except OSError as exc:
        return Probe(False, f"{path}: {exc.strerror}")
    return Probe(True)


def probe_stores(*reads: Callable[[], object]) -> Probe:
    """Run cheap reads against the stores; any failure makes the probe fail."""
    for read in reads:
        try:
            read()
        except Exception as exc:
            return Probe(False, f"store read failed: {type(exc).__name__}")
    return Probe(True)


class Readiness:
    """The serving state the health service reports, from the probe and from failed calls.

    ``on_change(serving)`` is called (on the event loop) whenever the state flips.
    """

    def __init__(self, probe: Callable[[], Probe]) -> None:
        self.probe = probe
        self.serving = True
        self.problem = ""

    def failed(self, code: ErrorCode) -> bool:
        """A call failed with ``code``; True when that makes the server not ready."""
        if code not in UNAVAILABLE_REASONS or not self.serving:
            return False
        self.serving, self.problem = False, code.value
        log.warning("NOT_SERVING: a call failed with %s", code.value)
        return True

    def check(self) -> bool:
        """Run the probe (blocking I/O: call it off the event loop); True when the state
        changed."""
        result = self.probe()
        if result.ok == self.serving:
            return False
        self.serving, self.problem = result.ok, result.problem
        if result.ok:
            log.warning("SERVING again: the audit trail and the stores answer")
        else:
            log.warning("NOT_SERVING: %s", result.problem)
        return True
