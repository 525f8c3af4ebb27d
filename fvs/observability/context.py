"""The call in progress: one mutable record per RPC, in a context variable.

The interceptor (``fvs.api.observe``) opens it; the layers below note what they learn (the
request id, the caller's agency, the outcome). Worker threads run with a copy of the caller's
context, and the record is shared by reference, so what a worker notes is seen by the event
loop when the call ends. It never holds a citizen ID, an image, an embedding or a consent
reference.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

MAX_REQUEST_ID = 128


@dataclass
class CallContext:
    method: str
    request_id: str
    agency: str = ""
    code: str = "OK"  # gRPC status code name
    reason: str = ""  # ErrorInfo reason (FVS error code) when refused
    span: Any = None  # the call's tracing span, when tracing is on


_current: ContextVar[CallContext | None] = ContextVar("fvs_call", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def open_call(method: str) -> tuple[CallContext, object]:
    """Start a call's record; returns it and the token to pass to ``close_call``."""
    call = CallContext(method, new_request_id())
    return call, _current.set(call)


def close_call(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def current_call() -> CallContext | None:
    return _current.get()


def call_request_id() -> str:
    """The request id of the call in progress ("" outside a call)."""
    call = _current.get()
    return call.request_id if call is not None else ""


def note_request_id(request_id: str) -> None:
    """The caller's own request id (already validated), which the audit record carries."""
    call = _current.get()
    if call is not None and request_id:
        call.request_id = request_id[:MAX_REQUEST_ID]


def note_agency(agency: str) -> None:
    call = _current.get()
    if call is not None and agency:
        call.agency = agency


def note_outcome(code: str, reason: str) -> None:
    call = _current.get()
    if call is not None:
        call.code, call.reason = code, reason
