// The audit pages: scans go to the API and the answer shows at once; progress is polled so
// several people scanning see each other's work; the camera reads labels with the vendored
// jsQR decoder (or the browser's own BarcodeDetector). Print buttons print.
(function () {
  "use strict";
  for (const button of document.querySelectorAll("[data-print]")) {
    button.hidden = false;
    button.addEventListener("click", () => window.print());
  }
  const app = document.getElementById("audit-app");
  if (!app) return;

  const $ = (id) => document.getElementById(id);
  const PLACE_KEY = "trolley.audit.place.v1";
  const form = $("audit-scan-form");
  const code = form.querySelector('[name="code"]');
  const place = form.querySelector('[name="location_id"]');
  const feedback = $("audit-feedback");
  const condition = $("audit-condition");
  const conditionForm = $("audit-condition-form");
  let lastTag = $("audit-last").textContent.trim();

  function show(tone, message) {
    feedback.className = "audit-feedback " + tone;
    feedback.textContent = message;
  }

  async function send(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": app.dataset.csrf },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : "Something went wrong; try again.";
      throw new Error(message);
    }
    return data;
  }

  // --- where the person is: remembered on this device -------------------------------------
  try {
    const saved = localStorage.getItem(PLACE_KEY);
    if (saved && !new URLSearchParams(location.search).get("at") &&
        place.querySelector('option[value="' + CSS.escape(saved) + '"]')) place.value = saved;
  } catch (e) { /* private mode */ }
  place.addEventListener("change", () => {
    try { localStorage.setItem(PLACE_KEY, place.value); } catch (e) { /* private mode */ }
    code.focus();
  });

  // --- scanning -------------------------------------------------------------------------------
  let busy = false;
  async function scan(text) {
    const value = text.trim();
    if (!value || busy) return;
    if (!place.value) { show("bad", "Choose where you are scanning first."); place.focus(); return; }
    busy = true;
    show("info", "Recording " + value + "…");
    try {
      const result = await send(app.dataset.scanUrl, { code: value, location_id: parseInt(place.value, 10) });
      show(result.tone, result.message);
      if (result.outcome !== "unknown") showCondition(result.asset_tag);
      refresh();
    } catch (error) {
      show("bad", error.message);
    } finally {
      busy = false;
      code.value = "";
      code.focus();
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); scan(code.value); });

  // --- the condition checklist for the device just scanned ---------------------------------
  function showCondition(tag) {
    lastTag = tag;
    $("audit-last").textContent = tag;
    conditionForm.reset();
    conditionForm.action = app.dataset.conditionFormUrl.replace("TAG", encodeURIComponent(tag));
    condition.hidden = false;
  }
  conditionForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!lastTag) return;
    const body = {};
    for (const name of ["case_on", "screen_intact", "charger", "label_readable", "powers_on"]) {
      body[name] = conditionForm.querySelector('[name="' + name + '"]').checked;
    }
    const note = conditionForm.querySelector('[name="note"]').value.trim();
    if (note) body.note = note;
    try {
      const item = await send(app.dataset.conditionUrl.replace("TAG", encodeURIComponent(lastTag)), body);
      show(item.damaged ? "warn" : "ok", item.damaged
        ? item.asset_tag + ": damage noted (" + item.problems.join(", ") + ")."
        : item.asset_tag + ": condition recorded, all fine.");
      refresh();
    } catch (error) {
      show("bad", error.message);
    }
    code.focus();
  });

  // --- live progress: everyone's scans, every few seconds ----------------------------------
  function render(progress) {
    $("audit-total").textContent = progress.found + " / " + progress.expected;
    const list = $("audit-places");
    list.replaceChildren();
    for (const p of progress.places) {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = p.text;
      const bar = document.createElement("progress");
      bar.max = Math.max(p.expected, 1);
      bar.value = p.found;
      bar.setAttribute("aria-label", p.text);
      li.append(label, document.createElement("br"), bar);
      list.append(li);
    }
    $("audit-extra").textContent = "Unknown labels: " + progress.unknown + " · Not expected: " + progress.not_expected;
    const recent = $("audit-recent");
    recent.replaceChildren();
    for (const r of progress.recent) {
      const li = document.createElement("li");
      li.textContent = r.asset_tag + ": " + r.state + (r.place ? " in " + r.place : "") + (r.by ? " · " + r.by : "");
      recent.append(li);
    }
    if (progress.status !== "open") {
      show("bad", "This audit has been signed off and is locked: no more scans are taken.");
      form.querySelector('button[type="submit"]').disabled = true;
    }
  }
  async function refresh() {
    try {
      const response = await fetch(app.dataset.progressUrl, { credentials: "same-origin" });
      if (response.ok) render(await response.json());
    } catch (e) { /* offline for a moment: the next poll catches up */ }
  }
  setInterval(() => { if (!document.hidden) refresh(); }, 5000);

  // --- the camera --------------------------------------------------------------------------
  const cameraButton = $("audit-camera");
  const box = $("audit-camera-box");
  const video = $("audit-video");
  const detector = "BarcodeDetector" in window ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) cameraButton.hidden = false;
  let stream = null;
  let seen = "";
  let seenAt = 0;
  const canvas = document.createElement("canvas");
  async function decode() {
    if (video.readyState < 2 || !video.videoWidth) return null;
    if (detector) {
      try {
        const codes = await detector.detect(video);
        return codes.length ? codes[0].rawValue : null;
      } catch (e) { return null; }
    }
    if (!window.jsQR) return null;
    const scale = Math.min(1, 720 / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    const found = window.jsQR(image.data, canvas.width, canvas.height, { inversionAttempts: "attemptBoth" });
    return found ? found.data : null;
  }
  async function tick() {
    if (!stream) return;
    const text = await decode();
    const now = Date.now();
    // A label in view is read many times a second: it counts once until another is seen.
    if (text && (text !== seen || now - seenAt > 5000)) {
      seen = text;
      seenAt = now;
      await scan(text);
    }
    setTimeout(tick, 200);
  }
  async function start() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: false,
        video: { facingMode: { ideal: "environment" } } });
    } catch (e) {
      show("bad", "The camera could not start. Allow the camera for this site, or type the asset tag.");
      return;
    }
    video.srcObject = stream;
    box.hidden = false;
    try { await video.play(); } catch (e) { /* plays once metadata loads */ }
    cameraButton.textContent = "Stop the camera";
    tick();
  }
  function stop() {
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    video.srcObject = null;
    box.hidden = true;
    cameraButton.textContent = "Use the camera";
    code.focus();
  }
  cameraButton.addEventListener("click", () => (stream ? stop() : start()));
  app.dataset.ready = "true";  // scans typed before this would post the no-script form instead
})();
