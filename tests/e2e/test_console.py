"""The tester console end to end: a real FVS server (gRPC, real model), `fvs console` as a
subprocess, and Debian's Chromium driven by Playwright, reading what a tester sees.

Screenshots of each page go to $FVS_ARTIFACTS/console (or the pytest tmp dir)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fvs.api.client import FvsClient
from fvs.audit.log import read_records
from fvs.audit.trail import audit_path
from fvs.citizen_id import complete, is_valid
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from tests.conftest import DATA, encode, photo
from tests.e2e.conftest import ServerThread

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Console:
    url: str
    process: subprocess.Popen[str]


def start_console(server: str, *tls: str) -> Console:
    """`fvs console` on a free loopback port; the URL is the first line it prints."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fvs",
            "--log-level",
            "WARNING",
            "console",
            "--server",
            server,
            "--listen",
            "127.0.0.1:0",
            *(tls or ("--insecure",)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if match is None:
        process.kill()
        rest = process.communicate(timeout=10)[0]
        pytest.fail(f"fvs console did not start: {line}{rest}")
    return Console(match.group(1), process)


def stop_console(console: Console) -> None:
    console.process.terminate()
    try:
        console.process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        console.process.kill()
        console.process.communicate()


@pytest.fixture(scope="module")
def console(server: ServerThread) -> Iterator[Console]:
    running = start_console(server.address)
    yield running
    stop_console(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run scripts/ensure_chromium.sh (as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # CSP violations (an inline style or script the policy blocks) are reported here
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield tab
    context.close()
    assert not errors, f"errors on the page: {errors}"


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("FVS_ARTIFACTS")
    folder = Path(root) / "console" if root else tmp_path_factory.mktemp("console-screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def submit(page: Any) -> None:
    page.click("#submit")
    page.wait_for_selector("#result[data-state=done]", timeout=30_000)


def overlay(page: Any, figure: str) -> dict[str, Any]:
    """What the overlay of ``figure`` draws, in image pixels, and the image's own size."""
    result: dict[str, Any] = page.evaluate(
        """(figure) => {
            const img = document.getElementById(figure + '-img');
            const svg = document.querySelector('#' + figure + '-figure svg.overlay');
            if (!svg) return {boxes: 0, landmarks: []};
            const r = svg.querySelector('rect.face-box');
            return {
                boxes: svg.querySelectorAll('rect.face-box').length,
                box: ['x', 'y', 'width', 'height'].map((a) => Number(r.getAttribute(a))),
                landmarks: [...svg.querySelectorAll('circle.landmark')].map(
                    (c) => [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))]),
                image: [img.naturalWidth, img.naturalHeight],
                viewBox: svg.getAttribute('viewBox'),
            };
        }""",
        figure,
    )
    return result


def assert_face_drawn(page: Any, figure: str) -> None:
    drawn = overlay(page, figure)
    assert drawn["boxes"] == 1
    assert len(drawn["landmarks"]) == 5
    x, y, w, h = drawn["box"]
    width, height = drawn["image"]
    assert drawn["viewBox"] == f"0 0 {width} {height}"
    assert w > 40 and h > 40 and -w / 4 < x < width and -h / 4 < y < height
    for lx, ly in drawn["landmarks"]:  # every landmark inside the face box
        assert x <= lx <= x + w and y <= ly <= y + h
    left_eye, right_eye, nose = drawn["landmarks"][:3]
    assert left_eye[0] < nose[0] < right_eye[0]  # as seen in the image
    assert nose[1] > max(left_eye[1], right_eye[1])


def number(text: str) -> float:
    match = re.search(r"-?\d+(\.\d+)?", text)
    assert match, text
    return float(match.group(0))


def two_faces(pipeline: FacePipeline, tmp_path: Path) -> Path:
    """obama.jpg and biden.jpg pasted side by side, each face centred in its half."""
    from tests.integration.test_pipeline import face_tile

    path = tmp_path / "two-faces.jpg"
    tiles = [face_tile(pipeline, "obama.jpg", 300), face_tile(pipeline, "biden.jpg", 300)]
    path.write_bytes(encode(np.hstack(tiles)))
    return path


def test_enrol_then_verify_genuine_and_impostor(
    console: Console, page: Any, artefacts: Path, tmp_path: Path
) -> None:
    page.goto(f"{console.url}/enrol")
    page.click("#generate")
    citizen_id = page.input_value("#citizen-id")
    assert is_valid(citizen_id), citizen_id
    page.set_input_files("#photo", str(DATA / "obama.jpg"))
    submit(page)
    assert page.inner_text("#template-version") == "1"
    assert "citizen record created" in page.inner_text("#enrolled")
    assert_face_drawn(page, "photo")
    assert "Citizen ID · เลขประจำตัวประชาชน" in page.inner_text(".citizen")
    page.screenshot(path=str(artefacts / "enrol.png"), full_page=True)

    page.goto(f"{console.url}/verify")
    page.select_option("#enrolled-pick", citizen_id)  # remembered by this browser session
    assert page.input_value("#citizen-id") == citizen_id
    page.set_input_files("#probe", str(DATA / "obama2.jpg"))
    submit(page)
    genuine = number(page.inner_text("#score"))
    cosine = number(page.inner_text("#cosine"))
    assert genuine >= 80 and cosine > 0.5, (genuine, cosine)
    assert re.search(r"1 in [\d,]+ different people score this high", page.inner_text("#fmr"))
    assert_face_drawn(page, "probe")
    quality = page.inner_text("table.quality")
    assert "sharpness" in quality and ">= 10" in quality and "passes" in quality
    timings = page.inner_text("table.timings")
    for stage in ("decode", "detect", "align", "embed", "match", "total", "round trip"):
        assert stage in timings
    page.screenshot(path=str(artefacts / "verify.png"), full_page=True)

    page.set_input_files("#probe", str(DATA / "biden.jpg"))
    submit(page)
    impostor = number(page.inner_text("#score"))
    assert impostor < 40 and number(page.inner_text("#cosine")) < 0.2, impostor
    assert_face_drawn(page, "probe")
    history = page.inner_text("#history")
    assert history.count(citizen_id) == 3 and "enrolled v1" in history

    # a photo stored sideways with an EXIF orientation: FVS and the browser both turn it
    # upright, so the overlay still falls on the face (eyes level, either side of the nose)
    with Image.open(DATA / "obama2.jpg") as upright:
        size = list(upright.size)
        sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rotated = tmp_path / "obama2-exif6.jpg"
    sideways.save(rotated, "JPEG", exif=exif, quality=90)
    page.set_input_files("#probe", str(rotated))
    submit(page)
    assert number(page.inner_text("#score")) >= 80
    assert_face_drawn(page, "probe")
    assert overlay(page, "probe")["image"] == size

    page.set_viewport_size(PHONE)  # the same result at phone width, without sideways scroll
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(artefacts / "verify-phone.png"), full_page=True)


REFUSAL_CITIZEN = complete("555000000001")  # used by no other test


def test_refusals_show_reason_explanation_and_metadata(
    console: Console,
    page: Any,
    artefacts: Path,
    tmp_path: Path,
    server: ServerThread,
    pipeline: FacePipeline,
) -> None:
    with FvsClient(server.address) as client:  # photo checks come after the citizen lookup
        client.enroll(REFUSAL_CITIZEN, photo("obama.jpg"), create_if_missing=True)
    page.goto(f"{console.url}/verify")
    page.fill("#citizen-id", REFUSAL_CITIZEN)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 20)
    page.set_input_files("#probe", str(corrupt))
    submit(page)
    assert page.inner_text("#refusal-reason") == "IMAGE_UNDECODABLE"
    assert page.inner_text("#refusal-code") == "INVALID_ARGUMENT"
    assert "not a readable JPEG" in page.inner_text("#refusal-explanation")
    assert "Traceback" not in page.inner_text("main")

    page.set_input_files("#probe", str(two_faces(pipeline, tmp_path)))
    submit(page)
    assert page.inner_text("#refusal-reason") == "MULTIPLE_FACES"
    assert "Crop the photo" in page.inner_text("#refusal-explanation")
    metadata = page.inner_text("table.refusal-metadata")
    assert "faces" in metadata
    page.screenshot(path=str(artefacts / "verify-refused.png"), full_page=True)

    page.fill("#citizen-id", "3100600445636")  # wrong check digit
    submit(page)
    assert page.inner_text("#refusal-reason") == "INVALID_CITIZEN_ID"
    assert "check_digit" in page.inner_text("table.refusal-metadata")


def test_text_from_the_server_is_never_markup(console: Console, page: Any) -> None:
    page.goto(f"{console.url}/verify")
    page.fill("#citizen-id", "3100600445635")
    hostile = '<img src=x onerror="window.pwned=1">'
    page.fill("#purpose", hostile)  # echoed back in UNKNOWN_PURPOSE's message
    page.set_input_files("#probe", str(DATA / "obama2.jpg"))
    submit(page)
    assert page.inner_text("#refusal-reason") == "UNKNOWN_PURPOSE"
    assert hostile in page.inner_text("#refusal-message")
    assert page.evaluate("window.pwned") is None
    assert page.locator("#outcome img").count() == 0


def test_labels_keyboard_and_drop(console: Console, page: Any) -> None:
    for path in ("/verify", "/enrol", "/compare"):
        page.goto(f"{console.url}{path}")
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('main input, main select')]
                .filter((e) => e.type !== 'radio' && e.labels.length === 0).map((e) => e.id)"""
        )
        assert unlabelled == []
    page.goto(f"{console.url}/verify")
    # a photo dropped on the box lands in the file input and is shown at once
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], 'dropped.jpg', {type: 'image/jpeg'}));
            document.querySelector('.drop').dispatchEvent(
                new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        base64.b64encode(photo("obama2.jpg")).decode(),
    )
    assert page.evaluate("document.getElementById('probe').files[0].name") == "dropped.jpg"
    page.wait_for_selector("#probe-img", state="visible")
    # the keyboard alone reaches the fields in order and submits with Enter
    order = []
    for _ in range(12):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert order.index("probe") < order.index("citizen-id") < order.index("purpose")
    page.focus("#citizen-id")
    page.keyboard.type("3100600445636")
    page.keyboard.press("Enter")
    page.wait_for_selector("#result[data-state=done]")
    assert page.inner_text("#refusal-reason") == "INVALID_CITIZEN_ID"


def test_compare_erases_the_temporary_citizen(
    console: Console, page: Any, artefacts: Path, server: ServerThread
) -> None:
    page.goto(f"{console.url}/compare")
    page.set_input_files("#photo-a", str(DATA / "biden.jpg"))
    page.set_input_files("#photo-b", str(DATA / "biden2.jpg"))
    submit(page)
    assert number(page.inner_text("#score")) >= 80
    assert_face_drawn(page, "photo-a")
    assert_face_drawn(page, "photo-b")
    temporary = page.inner_text("#temporary")
    assert "erased (1 template version(s))" in temporary
    citizen_id = re.search(r"\d{13}", temporary)
    assert citizen_id
    page.screenshot(path=str(artefacts / "compare.png"), full_page=True)
    with FvsClient(server.address) as client:  # the template is gone from the registry
        assert not client.get_citizen(citizen_id.group(0)).enrolled


def _post(console: Console, path: str, body: bytes, **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(f"{console.url}{path}", data=body, method="POST")
    for key, value in headers.items():
        request.add_header(key.replace("_", "-"), value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read()
        return exc.code, json.loads(
            text
        ) if exc.headers.get_content_type() == "application/json" else text


def test_security_basics(console: Console) -> None:
    with urllib.request.urlopen(f"{console.url}/verify", timeout=10) as response:
        html = response.read().decode()
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    token = re.search(r'name="fvs-csrf" content="([^"]+)"', html)
    assert token
    body = json.dumps({"citizen_id": "3100600445635"}).encode()
    json_type = {"Content_Type": "application/json"}

    status, answer = _post(console, "/api/verify", body, **json_type)
    assert (status, answer["refusal"]["reason"]) == (403, "CSRF_TOKEN")
    status, answer = _post(
        console,
        "/api/verify",
        body,
        **json_type,
        X_FVS_CSRF=token.group(1),
        Origin="http://evil.example",
    )
    assert (status, answer["refusal"]["reason"]) == (403, "CROSS_ORIGIN")
    status, answer = _post(
        console, "/api/verify", body, **json_type, X_FVS_CSRF=token.group(1), Host="evil.example"
    )
    assert (status, answer) == (
        421,
        b"unknown Host",
    )  # a DNS-rebinding page sends its own name as Host
    # a photo over the server's image limit is refused by the console, not sent on
    limit = 10 * 1024 * 1024
    big = json.dumps({"image": base64.b64encode(b"\xff\xd8" + bytes(limit)).decode()})
    status, answer = _post(
        console, "/api/verify", big.encode(), **json_type, X_FVS_CSRF=token.group(1)
    )
    assert (status, answer["refusal"]["reason"]) == (413, "UPLOAD_TOO_LARGE")
    assert answer["refusal"]["metadata"]["limit"] == str(limit)
    # a body declared larger than two such photos is refused before it is read
    host, port = console.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/api/compare")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("X-FVS-CSRF", token.group(1))
    connection.putheader("Content-Length", str(100 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["refusal"]["reason"] == "UPLOAD_TOO_LARGE"
    connection.close()
    status, answer = _post(console, "/api/verify", body, **json_type, X_FVS_CSRF=token.group(1))
    assert status == 200  # through the console's checks: FVS itself answers
    # FVS runs its cheap checks (ID, image present, sizes) before authorisation
    assert answer["refusal"]["source"] == "fvs" and answer["refusal"]["reason"] == "IMAGE_MISSING"


def test_console_with_the_testers_own_certificate(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    pipeline: FacePipeline,
    page: Any,
) -> None:
    """mTLS, set up as the README says: the tester's lab system is registered with Registry
    rights, the console calls with its certificate, and the audit trail names that system."""
    from tests.e2e.test_admin_cli import ok
    from tests.e2e.test_cli import fvs

    pki, tester = tmp_path / "pki", tmp_path / "tester"
    settings = settings_factory()
    settings.access.tls_dir = pki / "server"  # the server's folder, without the CA key
    d = ("--data-dir", str(settings.store.data_dir))
    ok(fvs("pki", "init", "--dir", str(pki), *d))
    agency = ("--code", "TESTLAB", "--kind", "STATE", "--name", "Test Lab")
    ok(fvs("admin", "agency", "add", *d, *agency, "--registration", "T-1", "--mission", "tests"))
    ok(
        fvs(
            "admin", "permit", "grant", *d, "--agency", "TESTLAB", "--purpose", "KYC", "--days", "1"
        )
    )
    system = ("--agency", "TESTLAB", "--name", "tester", "--registry")
    added = ok(
        fvs("admin", "system", "add", *d, *system, "--pki-dir", str(pki), "--out", str(tester))
    )
    assert "with Registry rights" in added
    (tester / "ca.pem").write_bytes((pki / "ca" / "ca.pem").read_bytes())
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        running = start_console(server.address, "--tls-dir", str(tester))
        try:
            page.goto(f"{running.url}/enrol")
            assert "mutual TLS as" in page.inner_text("header")
            page.fill("#citizen-id", "1234545678781")
            page.set_input_files("#photo", str(DATA / "obama.jpg"))
            submit(page)
            assert page.inner_text("#template-version") == "1"
            page.goto(f"{running.url}/verify")
            page.fill("#citizen-id", "1234545678781")
            page.set_input_files("#probe", str(DATA / "obama2.jpg"))
            submit(page)
            assert number(page.inner_text("#score")) >= 80
        finally:
            stop_console(running)
    finally:
        server.stop()
    records = list(read_records(audit_path(settings.store.data_dir)))
    calls = {(r["operation"], r["outcome"]): r["system"] for r in records}
    assert calls[("Enroll", "OK")] == "TESTLAB/tester"
    assert calls[("Verify", "OK")] == "TESTLAB/tester"
