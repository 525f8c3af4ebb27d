// FVS tester console: plain JavaScript, no build step, no third-party code.
// Every text from the server or the user is written with textContent, never as HTML.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const HISTORY_KEY = "fvs-console-history";
  const ENROLLED_KEY = "fvs-console-enrolled";
  const LANDMARKS = ["left eye", "right eye", "nose tip", "left mouth corner", "right mouth corner"];
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const csrf = meta("fvs-csrf");
  const maxImageBytes = Number(meta("fvs-max-image-bytes"));
  const page = document.body.dataset.page;

  // ---- small DOM helpers ------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function table(caption, headers, rows, attrs) {
    const t = el("table", attrs || {});
    t.append(el("caption", { text: caption }));
    const head = el("tr");
    for (const h of headers) head.append(el("th", { scope: "col", text: h }));
    t.append(el("thead", {}, head));
    const body = el("tbody");
    for (const row of rows) body.append(row);
    t.append(body);
    return t;
  }

  function dl(pairs, attrs) {
    const list = el("dl", attrs || {});
    for (const [term, value, id] of pairs) {
      list.append(el("dt", { text: term }));
      const dd = el("dd", { text: String(value) });
      if (id) dd.id = id;
      list.append(dd);
    }
    return list;
  }

  // ---- session history (browser only) -----------------------------------------------------
  function load(key) {
    try {
      return JSON.parse(sessionStorage.getItem(key) || "[]");
    } catch (e) {
      return [];
    }
  }

  function remember(entry) {
    const items = load(HISTORY_KEY);
    items.unshift({ time: new Date().toLocaleTimeString(), page, ...entry });
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(items.slice(0, 50)));
    showHistory();
  }

  function showHistory() {
    const list = document.getElementById("history");
    list.replaceChildren();
    for (const item of load(HISTORY_KEY)) {
      const who = item.citizen_id ? ` ${item.citizen_id}` : "";
      list.append(el("li", { text: `${item.time} ${item.page}${who}: ${item.outcome}` }));
    }
  }

  function rememberEnrolled(citizenId) {
    const ids = load(ENROLLED_KEY).filter((id) => id !== citizenId);
    ids.unshift(citizenId);
    sessionStorage.setItem(ENROLLED_KEY, JSON.stringify(ids.slice(0, 50)));
  }

  document.getElementById("history-clear").addEventListener("click", () => {
    sessionStorage.removeItem(HISTORY_KEY);
    sessionStorage.removeItem(ENROLLED_KEY);
    showHistory();
    fillEnrolled();
  });

  function fillEnrolled() {
    const pick = document.getElementById("enrolled-pick");
    if (!pick) return;
    const ids = load(ENROLLED_KEY);
    pick.replaceChildren(el("option", { value: "", text: ids.length ? "(choose)" : "(none yet)" }));
    for (const id of ids) pick.append(el("option", { value: id, text: id }));
  }

  // ---- citizen IDs ------------------------------------------------------------------------
  function checkDigit(first12) {
    let total = 0;
    for (let i = 0; i < 12; i++) total += Number(first12[i]) * (13 - i);
    return (11 - (total % 11)) % 10;
  }

  function syntheticId() {
    const digits = new Uint8Array(12);
    crypto.getRandomValues(digits);
    let first12 = String(1 + (digits[0] % 8));
    for (let i = 1; i < 12; i++) first12 += String(digits[i] % 10);
    return first12 + String(checkDigit(first12));
  }

  // ---- photos: choose or drop, preview, overlay -------------------------------------------
  const previews = {};

  function setupDrop(zone) {
    const input = document.getElementById(zone.dataset.input);
    const show = () => preview(input.id, input.files[0]);
    input.addEventListener("change", show);
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        show();
      }
    });
  }

  function preview(name, file) {
    const figure = document.getElementById(`${name}-figure`);
    const img = document.getElementById(`${name}-img`);
    if (previews[name]) URL.revokeObjectURL(previews[name]);
    figure.querySelectorAll("svg").forEach((svg) => svg.remove());
    if (!file) {
      figure.hidden = true;
      return;
    }
    previews[name] = URL.createObjectURL(file);
    img.src = previews[name];
    figure.hidden = false;
    // a new photo: show it, and drop the result that belonged to the previous one
    document.getElementById("result").hidden = false;
    document.getElementById("outcome").replaceChildren();
  }

  async function overlay(name, face) {
    const figure = document.getElementById(`${name}-figure`);
    const img = document.getElementById(`${name}-img`);
    const caption = figure.querySelector("figcaption");
    caption.dataset.drawn = caption.dataset.drawn || caption.textContent;
    figure.hidden = false;
    figure.querySelectorAll("svg").forEach((svg) => svg.remove());
    if (!face) {
      caption.textContent = "The photo sent: no face is drawn, FVS did not use this photo.";
      return;
    }
    caption.textContent = caption.dataset.drawn;
    try {
      await img.decode();
    } catch (e) {
      return; // the browser cannot show this file; FVS's answer is shown all the same
    }
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "overlay");
    svg.setAttribute("role", "img");
    const [x0, y0, x1, y1] = face.box;
    svg.setAttribute(
      "aria-label",
      `Face box from (${x0.toFixed(0)}, ${y0.toFixed(0)}) to (${x1.toFixed(0)}, ${y1.toFixed(0)}) ` +
        `and ${face.landmarks.length} landmarks`
    );
    const box = document.createElementNS(SVG, "rect");
    box.setAttribute("class", "face-box");
    box.setAttribute("x", x0);
    box.setAttribute("y", y0);
    box.setAttribute("width", x1 - x0);
    box.setAttribute("height", y1 - y0);
    box.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(box);
    const r = Math.max(2, (x1 - x0) / 28);
    face.landmarks.forEach(([x, y], i) => {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("class", `landmark landmark-${i}`);
      dot.setAttribute("cx", x);
      dot.setAttribute("cy", y);
      dot.setAttribute("r", r);
      const title = document.createElementNS(SVG, "title");
      title.textContent = LANDMARKS[i] || `landmark ${i + 1}`;
      dot.append(title);
      svg.append(dot);
    });
    img.parentElement.append(svg);
  }

  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  // ---- talking to the console's API -------------------------------------------------------
  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-fvs-csrf": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    try {
      return await response.json();
    } catch (e) {
      return consoleRefusal("CONSOLE_ERROR", `the console answered HTTP ${response.status}`);
    }
  }

  function consoleRefusal(reason, message, metadata) {
    return {
      ok: false,
      refusal: {
        source: "console",
        code: "",
        reason,
        message,
        explanation: "The console refused this request; nothing was sent to FVS.",
        metadata: metadata || {},
      },
    };
  }

  function tooLarge(file) {
    if (file && file.size > maxImageBytes) {
      return consoleRefusal(
        "UPLOAD_TOO_LARGE",
        `the photo is ${file.size} bytes; the server's limit is ${maxImageBytes}`,
        { limit: String(maxImageBytes) }
      );
    }
    return null;
  }

  // ---- rendering results ------------------------------------------------------------------
  function renderRefusal(out, refusal, heading) {
    const box = el("div", { class: "refusal", role: "alert" });
    box.append(el("h3", { text: heading || "Refused" }));
    const pairs = [
      ["Reason", refusal.reason || refusal.code, "refusal-reason"],
      ["Explanation", refusal.explanation, "refusal-explanation"],
      ["Message", refusal.message, "refusal-message"],
    ];
    if (refusal.code) pairs.splice(1, 0, ["gRPC code", refusal.code, "refusal-code"]);
    pairs.push(["Refused by", refusal.source === "console" ? "this console" : "FVS"]);
    box.append(dl(pairs));
    const entries = Object.entries(refusal.metadata || {});
    if (entries.length) {
      const rows = entries.map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: v })));
      box.append(table("ErrorInfo metadata", ["key", "value"], rows, { class: "refusal-metadata" }));
    }
    out.append(box);
  }

  function qualityTable(rows, caption) {
    const trs = rows.map((q) => {
      const verdict = q.passed === null ? "shown only" : q.passed ? "passes" : "below minimum";
      const tr = el(
        "tr",
        { class: q.passed === false ? "fail" : "" },
        el("th", { scope: "row", text: q.component }),
        el("td", { text: q.value }),
        el("td", { text: q.minimum }),
        el("td", { text: verdict })
      );
      return tr;
    });
    return table(caption, ["component", "value", "minimum", ""], trs, { class: "quality" });
  }

  function timingsTable(rows) {
    const trs = rows.map((t) =>
      el("tr", {}, el("th", { scope: "row", text: t.stage }), el("td", { text: `${t.ms.toFixed(1)} ms` }))
    );
    return table("Time per stage", ["stage", "time"], trs, { class: "timings" });
  }

  function renderScore(out, r, prefix) {
    const score = el("div", { class: "score" });
    score.append(el("p", { class: "big", id: `${prefix}score`, text: `${r.match_score.toFixed(2)} %` }));
    const meter = el("meter", { min: "0", max: "100", value: String(r.match_score), "aria-label": "match score" });
    score.append(meter);
    score.append(el("p", { id: `${prefix}fmr`, class: "fmr", text: r.fmr_words }));
    out.append(score);
    out.append(
      dl([
        ["Cosine similarity", r.similarity.toFixed(4), `${prefix}cosine`],
        ["False match rate", r.false_match_rate === null ? "not claimed" : r.false_match_rate.toExponential(1)],
        ["Score mapping", r.score_mapping],
        ["Model", r.model],
        ["Template version compared", r.template_version],
        ["Request id", r.request_id],
      ])
    );
    out.append(
      el("p", {
        class: "hint",
        text: "Score scale: 60 % = 1 in 1,000 different people score this high, 80 % = 1 in 10,000, 100 % = 1 in 100,000 or fewer.",
      })
    );
  }

  function renderCitizen(out, c) {
    const bi = (en, th) => `${en} · ${th}`;
    const list = dl(
      [
        [bi("Citizen ID", "เลขประจำตัวประชาชน"), c.citizen_id],
        [bi("First name", "ชื่อ"), `${c.first_name_th} / ${c.first_name_en}`],
        [bi("Last name", "นามสกุล"), `${c.last_name_th} / ${c.last_name_en}`],
        [bi("Sex", "เพศ"), c.sex],
        [bi("Date of birth", "วันเกิด"), c.birth_date],
        [bi("Province", "จังหวัด"), c.province],
        [bi("District", "อำเภอ/เขต"), c.district],
        [bi("Card status", "สถานะบัตร"), c.card_status],
        ["Synthetic", c.synthetic ? "yes" : "no"],
      ],
      { class: "citizen" }
    );
    out.append(el("h3", { text: "Citizen record" }), list);
  }

  // ---- pages ------------------------------------------------------------------------------
  function begin(form) {
    const result = document.getElementById("result");
    const out = document.getElementById("outcome");
    result.hidden = false;
    result.setAttribute("aria-busy", "true");
    out.replaceChildren(el("p", { class: "working", text: "Working…" }));
    form.querySelector("button[type=submit]").disabled = true;
    return {
      out,
      done() {
        result.setAttribute("aria-busy", "false");
        form.querySelector("button[type=submit]").disabled = false;
        out.querySelector(".working")?.remove();
        document.getElementById("result").dataset.state = "done";
      },
    };
  }

  async function onVerify(event) {
    event.preventDefault();
    const form = event.target;
    const file = document.getElementById("probe").files[0];
    const citizenId = document.getElementById("citizen-id").value.trim();
    document.getElementById("result").dataset.state = "busy";
    const run = begin(form);
    let r = tooLarge(file);
    if (!r) {
      r = await post("/api/verify", {
        citizen_id: citizenId,
        purpose: document.getElementById("purpose").value,
        consent_reference: document.getElementById("consent").value,
        image: file ? await readBase64(file) : "",
      });
    }
    await overlay("probe", r.ok ? r.face : null);
    if (r.ok) {
      renderScore(run.out, r, "");
      run.out.append(qualityTable(r.quality, "Quality of the photo against the verify minimums"));
      run.out.append(timingsTable(r.timings));
      remember({ citizen_id: citizenId, outcome: `score ${r.match_score.toFixed(2)} %, cosine ${r.similarity.toFixed(4)}` });
    } else {
      renderRefusal(run.out, r.refusal);
      remember({ citizen_id: citizenId, outcome: `refused ${r.refusal.reason || r.refusal.code}` });
    }
    run.done();
  }

  async function onEnrol(event) {
    event.preventDefault();
    const form = event.target;
    const file = document.getElementById("photo").files[0];
    const citizenId = document.getElementById("citizen-id").value.trim();
    const mode = form.querySelector("input[name=mode]:checked").value;
    document.getElementById("result").dataset.state = "busy";
    const run = begin(form);
    let r = tooLarge(file);
    if (!r) {
      r = await post("/api/enrol", { citizen_id: citizenId, mode, image: file ? await readBase64(file) : "" });
    }
    await overlay("photo", r.ok ? r.face : null);
    if (r.ok) {
      rememberEnrolled(r.citizen_id);
      const created = r.citizen_created ? " (citizen record created)" : "";
      run.out.append(el("p", { class: "headline", id: "enrolled", text: `Enrolled, template version ${r.template_version}${created}` }));
      run.out.append(
        dl([
          ["Stored template version", r.template_version, "template-version"],
          ["Model", r.model],
          ["Enrolled at", r.enrolled_at],
          ["Detection score", r.face.detection_score.toFixed(3)],
        ])
      );
      run.out.append(qualityTable(r.quality, "Quality of the photo against the enrolment minimums"));
      if (r.citizen) renderCitizen(run.out, r.citizen);
      remember({ citizen_id: r.citizen_id, outcome: `enrolled v${r.template_version}` });
    } else {
      renderRefusal(run.out, r.refusal);
      remember({ citizen_id: citizenId, outcome: `refused ${r.refusal.reason || r.refusal.code}` });
    }
    run.done();
  }

  async function onCompare(event) {
    event.preventDefault();
    const form = event.target;
    const fileA = document.getElementById("photo-a").files[0];
    const fileB = document.getElementById("photo-b").files[0];
    document.getElementById("result").dataset.state = "busy";
    const run = begin(form);
    let r = tooLarge(fileA) || tooLarge(fileB);
    if (!r) {
      r = await post("/api/compare", {
        purpose: document.getElementById("purpose").value,
        consent_reference: document.getElementById("consent").value,
        image_a: fileA ? await readBase64(fileA) : "",
        image_b: fileB ? await readBase64(fileB) : "",
      });
    }
    await overlay("photo-a", r.a ? r.a.face : null);
    await overlay("photo-b", r.b ? r.b.face : null);
    if (r.ok) {
      renderScore(run.out, r.b, "");
      const pair = el("div", { class: "pair" });
      pair.append(qualityTable(r.a.quality, "Photo A against the enrolment minimums"));
      pair.append(qualityTable(r.b.quality, "Photo B against the verify minimums"));
      run.out.append(pair, timingsTable(r.b.timings));
      remember({ outcome: `compare score ${r.b.match_score.toFixed(2)} %` });
    } else {
      const side = r.side === "a" ? "Photo A (enrolment) refused" : r.side === "b" ? "Photo B (verification) refused" : "Refused";
      renderRefusal(run.out, r.refusal, side);
      remember({ outcome: `compare refused ${r.refusal.reason || r.refusal.code}` });
    }
    if (r.temporary_citizen_id) {
      const erased = r.erase_refusal
        ? `could not be erased (${r.erase_refusal.reason || r.erase_refusal.code})`
        : `erased (${r.templates_erased} template version(s))`;
      run.out.append(
        el("p", { class: "hint", id: "temporary", text: `Temporary synthetic citizen ${r.temporary_citizen_id}: face templates ${erased}.` })
      );
    }
    run.done();
  }

  async function health() {
    const target = document.getElementById("health");
    try {
      const response = await fetch("/api/health", { credentials: "same-origin" });
      const r = await response.json();
      target.textContent = r.ok ? `FVS is ${r.status}.` : `FVS unreachable: ${r.refusal.reason || r.refusal.code}.`;
      target.className = r.ok && r.status === "SERVING" ? "up" : "down";
    } catch (e) {
      target.textContent = "The console does not answer.";
      target.className = "down";
    }
  }

  // ---- wiring -----------------------------------------------------------------------------
  document.querySelectorAll(".drop").forEach(setupDrop);
  showHistory();
  fillEnrolled();
  health();
  const pick = document.getElementById("enrolled-pick");
  if (pick) {
    pick.addEventListener("change", () => {
      if (pick.value) document.getElementById("citizen-id").value = pick.value;
    });
  }
  const generate = document.getElementById("generate");
  if (generate) {
    generate.addEventListener("click", () => {
      document.getElementById("citizen-id").value = syntheticId();
    });
  }
  const handlers = { verify: onVerify, enrol: onEnrol, compare: onCompare };
  const form = document.querySelector("main form");
  if (form && handlers[page]) form.addEventListener("submit", handlers[page]);
})();
