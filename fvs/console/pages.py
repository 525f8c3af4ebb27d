"""The console's HTML, rendered on the server. Every value that is not a literal of this module
goes through ``html.escape``; results are drawn by static/console.js with ``textContent``."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fvs.console.app import ConsoleConfig

NAV = [
    ("verify", "/verify", "Verify"),
    ("enrol", "/enrol", "Enrol"),
    ("compare", "/compare", "Compare"),
]
ACCEPT = "image/jpeg,image/png,image/webp"


def _bi(english: str, thai: str) -> str:
    """A bilingual label for a citizen-facing field: English, then Thai."""
    return f'{english} <span lang="th" class="th">· {thai}</span>'


def _layout(config: ConsoleConfig, page: str, title: str, main: str) -> str:
    current = ' aria-current="page"'
    nav = "".join(
        f'<li><a href="{href}"{current if key == page else ""}>{label}</a></li>'
        for key, href, label in NAV
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="fvs-csrf" content="{escape(config.csrf_token)}">
<meta name="fvs-max-image-bytes" content="{config.max_image_bytes}">
<title>{escape(title)} · FVS tester console</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/console.css">
<script src="/static/console.js" defer></script>
</head>
<body data-page="{page}">
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <p class="brand">FVS tester console</p>
  <nav aria-label="Pages"><ul>{nav}</ul></nav>
  <p class="conn">Server <code>{escape(config.server)}</code>, {escape(config.identity)}.
    <span id="health" role="status">checking…</span></p>
</header>
<main id="main" tabindex="-1">
<h1>{escape(title)}</h1>
{main}
</main>
<aside class="history" aria-labelledby="history-title">
  <h2 id="history-title">This session</h2>
  <p class="note">Kept in this browser tab only (sessionStorage): citizen IDs and outcomes, never
    photos. The console keeps nothing.</p>
  <ol id="history"></ol>
  <button type="button" id="history-clear">Clear history</button>
</aside>
</body>
</html>
"""


def _photo_field(name: str, label: str) -> str:
    return f"""<div class="drop" data-input="{name}">
  <label for="{name}">{label}</label>
  <input type="file" id="{name}" name="{name}" accept="{ACCEPT}" aria-describedby="{name}-hint">
  <p id="{name}-hint" class="hint">JPEG, PNG or WebP, or drop a file on this box.</p>
</div>"""


def _figure(name: str, caption: str) -> str:
    return f"""<figure class="photo" id="{name}-figure" hidden>
  <div class="photo-wrap"><img id="{name}-img" alt="{escape(caption)}"></div>
  <figcaption>{escape(caption)}: face box and the five landmarks (eyes, nose tip, mouth
    corners) where FVS found them.</figcaption>
</figure>"""


def _consent_fields() -> str:
    return f"""<div class="field">
  <label for="purpose">{_bi("Purpose", "วัตถุประสงค์")}</label>
  <input id="purpose" name="purpose" value="KYC" required maxlength="64" autocomplete="off"
    aria-describedby="purpose-hint">
  <p id="purpose-hint" class="hint">A purpose code the agency's permit lists (e.g. KYC).</p>
</div>
<div class="field">
  <label for="consent">{_bi("Consent reference", "เลขอ้างอิงความยินยอม")}</label>
  <input id="consent" name="consent_reference" required maxlength="128" autocomplete="off"
    value="CONSOLE-TEST" aria-describedby="consent-hint">
  <p id="consent-hint" class="hint">The data owner's consent record; sent as given now.</p>
</div>"""


def _minimums_note(config: ConsoleConfig, which: str) -> str:
    return (
        f'<p class="hint">Quality minimums shown are the {which} minimums of this console\'s '
        "settings (<code>FVS_QUALITY__*</code>, the shipped defaults unless set); the server "
        "applies its own.</p>"
    )


def verify_page(config: ConsoleConfig) -> str:
    main = f"""<form id="verify-form" class="panel" novalidate>
{_photo_field("probe", _bi("Photo", "รูปถ่าย"))}
<div class="field">
  <label for="citizen-id">{_bi("Citizen ID", "เลขประจำตัวประชาชน")}</label>
  <input id="citizen-id" name="citizen_id" inputmode="numeric" maxlength="13" required
    autocomplete="off" pattern="[0-9]{{13}}" aria-describedby="citizen-id-hint">
  <p id="citizen-id-hint" class="hint">13 digits, last one a check digit.</p>
</div>
<div class="field">
  <label for="enrolled-pick">Or pick a citizen you enrolled in this session</label>
  <select id="enrolled-pick"><option value="">(none yet)</option></select>
</div>
{_consent_fields()}
<button type="submit" id="submit">Verify</button>
</form>
<section id="result" class="panel result" aria-live="polite" aria-busy="false" hidden>
  <h2>Result</h2>
  <div class="result-grid">
  {_figure("probe", "The photo sent")}
  <div id="outcome"></div>
  </div>
  {_minimums_note(config, "verify")}
</section>"""
    return _layout(config, "verify", "Verify a photo", main)


def enrol_page(config: ConsoleConfig) -> str:
    main = f"""<p class="lead">Enrol a face in the <strong>synthetic</strong> registry (needs a
certificate with Registry rights). A new version replaces the active template.</p>
<form id="enrol-form" class="panel" novalidate>
{_photo_field("photo", _bi("Photo", "รูปถ่าย"))}
<div class="field wide">
  <label for="citizen-id">{_bi("Citizen ID", "เลขประจำตัวประชาชน")}</label>
  <div class="row">
    <input id="citizen-id" name="citizen_id" inputmode="numeric" maxlength="13" required
      autocomplete="off" pattern="[0-9]{{13}}" aria-describedby="citizen-id-hint">
    <button type="button" id="generate">Generate a synthetic ID</button>
  </div>
  <p id="citizen-id-hint" class="hint">13 digits; the generator makes a random one with a valid
    check digit.</p>
</div>
<fieldset>
  <legend>Citizen record</legend>
  <label><input type="radio" name="mode" value="new" checked> New synthetic citizen (created
    when the ID has no record)</label>
  <label><input type="radio" name="mode" value="existing"> Existing citizen only</label>
</fieldset>
<button type="submit" id="submit">Enrol</button>
</form>
<section id="result" class="panel result" aria-live="polite" aria-busy="false" hidden>
  <h2>Result</h2>
  <div class="result-grid">
  {_figure("photo", "The photo enrolled")}
  <div id="outcome"></div>
  </div>
  {_minimums_note(config, "enrolment")}
</section>"""
    return _layout(config, "enrol", "Enrol a synthetic citizen", main)


def compare_page(config: ConsoleConfig) -> str:
    main = f"""<p class="lead">Two photos, one score: photo A is enrolled under a temporary
synthetic citizen, photo B is verified against it, then the templates are erased.</p>
<form id="compare-form" class="panel" novalidate>
<div class="pair">
{_photo_field("photo-a", "Photo A (enrolled)")}
{_photo_field("photo-b", "Photo B (verified)")}
</div>
{_consent_fields()}
<button type="submit" id="submit">Compare</button>
</form>
<section id="result" class="panel result" aria-live="polite" aria-busy="false" hidden>
  <h2>Result</h2>
  <div class="pair">
  {_figure("photo-a", "Photo A")}
  {_figure("photo-b", "Photo B")}
  </div>
  <div id="outcome"></div>
  {_minimums_note(config, "enrolment (A) and verify (B)")}
</section>"""
    return _layout(config, "compare", "Compare two photos", main)
