"""Bounds on every value a caller supplies, and how such a value may appear in the audit trail.

One home for the limits: the intake (``fvs.intake``) refuses a value past them before anything
is authorised or recorded, and the gate writes every caller-supplied text through
:func:`recordable`, so that no record can grow past a few kilobytes whatever a caller sends.
"""

from __future__ import annotations

import hashlib

from fvs import citizen_id as cid
from fvs.domain import VerifyRequest
from fvs.errors import ErrorCode, FvsError

MAX_REQUEST_ID = 128  # printable ASCII
MAX_PURPOSE = 64
MAX_CONSENT_REFERENCE = 256
MAX_CITIZEN_ID = 13
MAX_BATCH_ITEMS = 64
MAX_DETAIL_ITEMS = 16  # fields of an admin call's details in its audit record
MAX_RECORD_TEXT = 512  # longest caller-supplied text an audit record holds verbatim
MAX_MESSAGE_TEXT = 1024  # longest status message sent to a caller
MAX_METADATA_TEXT = 256  # longest ErrorInfo metadata value


def is_clean_text(value: str, limit: int, ascii_only: bool = False) -> bool:
    """Short enough and printable (no control characters, no line breaks)."""
    return len(value) <= limit and value.isprintable() and (not ascii_only or value.isascii())


def check_text(value: str, field: str, limit: int, ascii_only: bool = False) -> str:
    """Return ``value`` or raise INVALID_REQUEST naming the field and the limit."""
    if not is_clean_text(value, limit, ascii_only):
        kind = "printable ASCII" if ascii_only else "printable"
        raise FvsError(
            ErrorCode.INVALID_REQUEST,
            f"{field} must be at most {limit} {kind} characters (got {len(value)})",
            field=field,
            limit=str(limit),
        )
    return value


def recordable(value: object, limit: int = MAX_RECORD_TEXT) -> str:
    """A caller-supplied value as an audit record may hold it: verbatim when it is short,
    printable text; otherwise its length and a sha256 prefix, so the record stays small and
    single-line and still identifies what was sent."""
    text = value if isinstance(value, str) else str(value)
    if is_clean_text(text, limit):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"<refused text: {len(text)} characters, sha256 {digest}...>"


def check_image(image: bytes, max_bytes: int | None) -> None:
    if not image:
        raise FvsError(ErrorCode.IMAGE_MISSING, "image is empty", field="image")
    if max_bytes is not None and len(image) > max_bytes:
        raise FvsError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"image is {len(image)} bytes; the limit is {max_bytes}",
            field="image",
            limit="bytes",
            max=str(max_bytes),
        )


def check_verify(request: VerifyRequest, max_image_bytes: int | None = None) -> None:
    """Raise the first problem of a Verify request (cheap checks only, no I/O)."""
    cid.validate(request.citizen_id)
    check_image(request.image, max_image_bytes)
    if request.request_id:
        check_text(request.request_id, "request_id", MAX_REQUEST_ID, ascii_only=True)
    check_text(request.purpose, "purpose", MAX_PURPOSE)
    if request.consent is not None:
        check_text(request.consent.reference, "consent.reference", MAX_CONSENT_REFERENCE)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis) for messages to humans."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def quoted(value: str, limit: int = 40) -> str:
    """A caller's value quoted in an error message: short and without control characters."""
    text = (
        value
        if is_clean_text(value, limit)
        else shorten(value.encode("unicode_escape").decode("ascii"), limit)
    )
    return repr(text)
