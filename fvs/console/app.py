"""The console's web application: three server-rendered pages and a small JSON API that the
pages' JavaScript calls. Each API call becomes one or more gRPC calls of ``FvsClient``.

Nothing is stored: a photo lives in memory for the length of its request only (the body is
read into memory, never spooled to disk), and results go back to the browser.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fvs.api.client import CallFailedError, FvsClient
from fvs.api.v1 import registry_pb2
from fvs.citizen_id import complete
from fvs.config import QualityMinimumsSettings, QualitySettings
from fvs.console import pages
from fvs.console.explain import explain, fmr_in_words, quality_rows

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
CSRF_HEADER = "x-fvs-csrf"
# Text fields of a request body (citizen ID, purpose, consent reference, mode) are short; the
# API's own limits are lower still.
TEXT_ALLOWANCE = 16 * 1024

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


@dataclass(frozen=True)
class ConsoleConfig:
    """What the console needs to know; built once by ``fvs console``."""

    server: str  # HOST:PORT of the FVS server
    identity: str  # how the console calls FVS, for the header ("mutual TLS as ...")
    allowed_hosts: frozenset[str]  # Host header values accepted (DNS-rebinding defence)
    max_image_bytes: int = 10 * 1024 * 1024  # the server's image limit (FVS_PIPELINE__...)
    quality: QualitySettings = field(default_factory=QualitySettings)
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def max_body_bytes(self) -> int:
        """Two base64 photos (Compare) and the text fields."""
        return 2 * (4 * ((self.max_image_bytes + 2) // 3)) + TEXT_ALLOWANCE


class ConsoleRefusedError(Exception):
    """A request the console itself refuses before anything is sent to FVS."""

    def __init__(self, status: int, reason: str, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.metadata = metadata

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": "console",
            "code": "",
            "reason": self.reason,
            "message": self.message,
            "explanation": "The console refused this request; nothing was sent to FVS.",
            "metadata": self.metadata,
        }


def refusal(exc: CallFailedError) -> dict[str, Any]:
    """An FVS refusal for the page: reason, code, message, explanation, ErrorInfo metadata."""
    return {
        "source": "fvs",
        "code": exc.code,
        "reason": exc.reason,
        "message": exc.message,
        "explanation": explain(exc.code, exc.reason),
        "metadata": exc.metadata,
    }


def synthetic_citizen_id() -> str:
    """A random 13-digit ID with a valid check digit (first digit 1-8, as issued IDs have)."""
    first12 = str(secrets.randbelow(8) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(11))
    return complete(first12)


def _face(face: Any) -> dict[str, Any]:
    b = face.box
    return {
        "box": [b.x_min, b.y_min, b.x_max, b.y_max],
        "landmarks": [[p.x, p.y] for p in face.landmarks],
        "detection_score": face.detection_score,
    }


def _quality(quality: Any, minimums: QualityMinimumsSettings) -> list[dict[str, Any]]:
    return [row.as_dict() for row in quality_rows(quality, minimums)]


def _timings(t: Any, round_trip_ms: float) -> list[dict[str, Any]]:
    stages = ["decode", "detect", "align", "quality", "embed", "match", "total"]
    rows = [{"stage": s, "ms": round(getattr(t, f"{s}_ms"), 2)} for s in stages]
    rows.append({"stage": "console round trip", "ms": round(round_trip_ms, 2)})
    return rows


def _verify_result(response: Any, config: ConsoleConfig, round_trip_ms: float) -> dict[str, Any]:
    fmr = response.false_match_rate if response.HasField("false_match_rate") else None
    return {
        "match_score": round(response.match_score, 2),
        "similarity": round(response.similarity, 4),
        "false_match_rate": fmr,
        "fmr_words": fmr_in_words(fmr, response.match_score),
        "model": response.model,
        "score_mapping": response.score_mapping,
        "template_version": response.template_version,
        "request_id": response.request_id,
        "face": _face(response.probe_face),
        "quality": _quality(response.quality, config.quality.verify),
        "timings": _timings(response.timings, round_trip_ms),
    }


def _enrol_result(response: Any, config: ConsoleConfig) -> dict[str, Any]:
    enrolled_at = ""
    if response.HasField("enrolled_at"):
        enrolled_at = response.enrolled_at.ToDatetime(tzinfo=dt.UTC).isoformat(timespec="seconds")
    return {
        "citizen_id": response.citizen_id,
        "template_version": response.template_version,
        "model": response.model,
        "citizen_created": response.citizen_created,
        "enrolled_at": enrolled_at,
        "face": _face(response.face),
        "quality": _quality(response.quality, config.quality.enroll),
    }


def _citizen(record: Any) -> dict[str, Any]:
    return {
        "citizen_id": record.citizen_id,
        "first_name_th": record.first_name_th,
        "last_name_th": record.last_name_th,
        "first_name_en": record.first_name_en,
        "last_name_en": record.last_name_en,
        "sex": registry_pb2.Sex.Name(record.sex).removeprefix("SEX_"),
        "birth_date": record.birth_date,
        "province": record.province,
        "district": record.district,
        "card_status": registry_pb2.CardStatus.Name(record.card_status).removeprefix(
            "CARD_STATUS_"
        ),
        "synthetic": record.synthetic,
        "template_version": record.template_version,
    }


class ConsoleApi:
    """The JSON endpoints. Each reads a bounded JSON body and calls FVS in a worker thread."""

    def __init__(self, config: ConsoleConfig, client: FvsClient) -> None:
        self.config = config
        self.client = client

    async def _body(self, request: Request) -> dict[str, Any]:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ConsoleRefusedError(
                413, "UPLOAD_TOO_LARGE", "the request is over the console's limit", limit=str(limit)
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ConsoleRefusedError(
                    413,
                    "UPLOAD_TOO_LARGE",
                    "the request is over the console's limit",
                    limit=str(limit),
                )
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ConsoleRefusedError(400, "BAD_REQUEST", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise ConsoleRefusedError(400, "BAD_REQUEST", "the body is not a JSON object")
        return data

    @staticmethod
    def _text(data: dict[str, Any], name: str) -> str:
        value = data.get(name, "")
        if not isinstance(value, str) or len(value) > 512:
            raise ConsoleRefusedError(
                400, "BAD_REQUEST", f"{name} must be a short string", field=name
            )
        return value.strip()

    def _image(self, data: dict[str, Any], name: str) -> bytes:
        encoded = data.get(name)
        if encoded is None or encoded == "":
            return b""  # FVS answers IMAGE_MISSING itself
        if not isinstance(encoded, str):
            raise ConsoleRefusedError(400, "BAD_REQUEST", f"{name} must be base64 text", field=name)
        try:
            image = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ConsoleRefusedError(
                400, "BAD_REQUEST", f"{name} is not base64", field=name
            ) from None
        if len(image) > self.config.max_image_bytes:
            raise ConsoleRefusedError(
                413,
                "UPLOAD_TOO_LARGE",
                f"the photo is {len(image)} bytes; the server's limit is "
                f"{self.config.max_image_bytes}",
                field=name,
                limit=str(self.config.max_image_bytes),
            )
        return image

    async def health(self, request: Request) -> dict[str, Any]:
        try:
            status = await to_thread.run_sync(self.client.health)
        except CallFailedError as exc:
            return {"ok": False, "refusal": refusal(exc)}
        return {"ok": True, "status": status}

    async def verify(self, request: Request) -> dict[str, Any]:
        data = await self._body(request)
        citizen_id = self._text(data, "citizen_id")
        purpose = self._text(data, "purpose")
        consent = self._text(data, "consent_reference")
        image = self._image(data, "image")
        start = time.perf_counter()
        try:
            response = await to_thread.run_sync(
                lambda: self.client.verify(citizen_id, image, purpose, consent)
            )
        except CallFailedError as exc:
            return {"ok": False, "refusal": refusal(exc)}
        round_trip = (time.perf_counter() - start) * 1000.0
        return {"ok": True, "citizen_id": citizen_id} | _verify_result(
            response, self.config, round_trip
        )

    async def enrol(self, request: Request) -> dict[str, Any]:
        data = await self._body(request)
        citizen_id = self._text(data, "citizen_id")
        create = self._text(data, "mode") != "existing"
        image = self._image(data, "image")
        try:
            response = await to_thread.run_sync(
                lambda: self.client.enroll(citizen_id, image, create_if_missing=create)
            )
        except CallFailedError as exc:
            return {"ok": False, "refusal": refusal(exc)}
        result: dict[str, Any] = {"ok": True} | _enrol_result(response, self.config)
        try:
            record = await to_thread.run_sync(lambda: self.client.get_citizen(citizen_id))
            result["citizen"] = _citizen(record)
        except CallFailedError as exc:
            result["citizen_refusal"] = refusal(exc)
        return result

    async def compare(self, request: Request) -> dict[str, Any]:
        """Enrol photo A under a temporary synthetic citizen, verify photo B against it, then
        erase the templates (always, also after a refusal)."""
        data = await self._body(request)
        purpose = self._text(data, "purpose")
        consent = self._text(data, "consent_reference")
        image_a = self._image(data, "image_a")
        image_b = self._image(data, "image_b")
        temporary = synthetic_citizen_id()

        def run() -> dict[str, Any]:
            result: dict[str, Any] = {"temporary_citizen_id": temporary}
            try:
                enrolled = self.client.enroll(temporary, image_a, create_if_missing=True)
            except CallFailedError as exc:
                return result | {"ok": False, "side": "a", "refusal": refusal(exc)}
            result["a"] = _enrol_result(enrolled, self.config)
            try:
                start = time.perf_counter()
                verified = self.client.verify(temporary, image_b, purpose, consent)
                round_trip = (time.perf_counter() - start) * 1000.0
                result.update(ok=True, b=_verify_result(verified, self.config, round_trip))
            except CallFailedError as exc:
                result.update(ok=False, side="b", refusal=refusal(exc))
            finally:  # erase whatever happened (also if the console itself failed)
                try:
                    erased = self.client.delete_enrollment(temporary)
                    result["templates_erased"] = erased.templates_deleted
                except CallFailedError as exc:
                    log.warning("compare: could not erase %s: %s", temporary, exc)
                    result["erase_refusal"] = refusal(exc)
            return result

        return await to_thread.run_sync(run)


def _endpoint(
    config: ConsoleConfig, handler: Callable[[Request], Awaitable[dict[str, Any]]]
) -> Callable[[Request], Awaitable[Response]]:
    """A JSON endpoint behind the same-origin and CSRF checks; never answers a traceback."""

    async def endpoint(request: Request) -> Response:
        headers = {"cache-control": "no-store"}
        try:
            if request.method == "POST":
                _check_same_origin(config, request)
            return JSONResponse(await handler(request), headers=headers)
        except ConsoleRefusedError as exc:
            return JSONResponse(
                {"ok": False, "refusal": exc.as_dict()}, status_code=exc.status, headers=headers
            )
        except Exception:
            log.exception("console: unexpected failure in %s", request.url.path)
            body = {
                "ok": False,
                "refusal": {
                    "source": "console",
                    "code": "",
                    "reason": "CONSOLE_ERROR",
                    "message": "the console failed unexpectedly; see its log",
                    "explanation": "An unexpected error in the console; details are in its log.",
                    "metadata": {},
                },
            }
            return JSONResponse(body, status_code=500, headers=headers)

    return endpoint


def _check_same_origin(config: ConsoleConfig, request: Request) -> None:
    """Cross-site request forgery defence: a state-changing call must come from this console's
    own pages (same Origin, same-origin fetch, JSON body and the page's token header)."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{host}":
        raise ConsoleRefusedError(403, "CROSS_ORIGIN", "requests from other sites are refused")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise ConsoleRefusedError(403, "CROSS_ORIGIN", "requests from other sites are refused")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ConsoleRefusedError(415, "BAD_REQUEST", "the body must be application/json")
    token = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(token.encode(), config.csrf_token.encode()):
        raise ConsoleRefusedError(403, "CSRF_TOKEN", "the request lacks this console's page token")


class SecurityHeaders:
    """Adds the security headers to every response and refuses unknown Host headers (a page
    on another site that rebinds its DNS name to 127.0.0.1 sends its own name as Host)."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        if host not in self.allowed_hosts:
            response = Response("unknown Host", status_code=421, media_type="text/plain")
            await self._with_headers(response)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _with_headers(response: Response) -> Response:
        for key, value in SECURITY_HEADERS.items():
            response.headers[key] = value
        return response


def create_app(config: ConsoleConfig, client: FvsClient) -> ASGIApp:
    """The console as an ASGI application calling FVS through ``client``."""
    api = ConsoleApi(config, client)

    def page(render: Callable[[ConsoleConfig], str]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return HTMLResponse(render(config), headers={"cache-control": "no-store"})

        return endpoint

    async def home(request: Request) -> Response:
        return RedirectResponse("/verify", status_code=303)

    routes = [
        Route("/", home),
        Route("/verify", page(pages.verify_page)),
        Route("/enrol", page(pages.enrol_page)),
        Route("/compare", page(pages.compare_page)),
        Route("/api/health", _endpoint(config, api.health)),
        Route("/api/verify", _endpoint(config, api.verify), methods=["POST"]),
        Route("/api/enrol", _endpoint(config, api.enrol), methods=["POST"]),
        Route("/api/compare", _endpoint(config, api.compare), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    return SecurityHeaders(app, config.allowed_hosts)
