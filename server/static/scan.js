// The trolley scan page: typed tags, barcode scanners (keyboards ending in Enter) and the camera.
// Every scan gets its own idempotency key and waits in a queue kept in localStorage, so a dropped
// connection loses nothing and a scan sent twice is recorded once. A trolley's label (or its
// code typed) chooses the trolley; with none chosen, each device goes back into its own.
(function () {
  "use strict";
  const app = document.getElementById("scan-app");
  if (!app || !document.getElementById("scan-form")) return;

  const QUEUE_KEY = "trolley.scan.queue.v1";
  // Per person: a shared iPad must not hand one teacher's trolley to the next.
  const PREFS_KEY = "trolley.scan.prefs.v2." + (app.dataset.user || "");
  const csrf = app.dataset.csrf;
  const $ = (id) => document.getElementById(id);
  const el = {
    setup: $("scan-setup"), trolley: $("scan-trolley"), klass: $("scan-class"), due: $("scan-due"),
    note: $("scan-note"), count: $("scan-count"), feedback: $("scan-feedback"),
    transfer: $("scan-transfer"), transferText: $("scan-transfer-text"),
    transferYes: $("scan-transfer-yes"), transferNo: $("scan-transfer-no"),
    form: $("scan-form"), code: $("scan-code"), camera: $("scan-camera"), undo: $("scan-undo"),
    all: $("scan-all"), cameraBox: $("scan-camera-box"), video: $("scan-video"),
    queue: $("scan-queue"), log: $("scan-log"), stillOut: $("scan-still-out"),
  };

  // --- small helpers ---------------------------------------------------------------------
  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function mode() {
    const checked = el.setup.querySelector('input[name="mode"]:checked');
    return checked ? checked.value : "out";
  }
  function trolleyId() { return el.trolley.value ? parseInt(el.trolley.value, 10) : null; }
  function trolleyName() { return el.trolley.options[el.trolley.selectedIndex].dataset.name; }
  function readQueue() {
    try { return JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]"); } catch (e) { return []; }
  }
  function writeQueue(queue) {
    try { localStorage.setItem(QUEUE_KEY, JSON.stringify(queue)); } catch (e) { /* private mode */ }
  }

  // --- sound: WebAudio, started by the first tap or key (iPad Safari needs a gesture) ------
  let audio = null;
  function unlockAudio() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!audio) audio = new Ctx();
    if (audio.state === "suspended") audio.resume();
  }
  document.addEventListener("pointerdown", unlockAudio, { passive: true });
  document.addEventListener("keydown", unlockAudio);
  const TONES = { ok: [[880, 0.09]], info: [[660, 0.09]], warn: [[880, 0.08], [660, 0.12]],
    bad: [[220, 0.35]], queued: [[520, 0.08], [520, 0.08]] };
  function beep(tone) {
    if (tone === "idle" || !audio || audio.state !== "running") return;
    let at = audio.currentTime;
    for (const [freq, length] of TONES[tone] || TONES.info) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = tone === "bad" ? "square" : "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.2, at);
      gain.gain.exponentialRampToValueAtTime(0.001, at + length);
      osc.connect(gain).connect(audio.destination);
      osc.start(at);
      osc.stop(at + length);
      at += length + 0.04;
    }
    if (navigator.vibrate) navigator.vibrate(tone === "bad" ? [80, 60, 80] : 40);
  }

  // --- what the teacher sees ---------------------------------------------------------------
  function show(tone, message, details) {
    el.feedback.className = "scan-feedback " + tone;
    el.feedback.textContent = message;
    if (details && details.length) {
      const list = document.createElement("ul");
      for (const text of details) {
        const li = document.createElement("li");
        li.textContent = text;
        list.appendChild(li);
      }
      el.feedback.appendChild(list);
    }
    beep(tone);
  }
  function logLine(tone, text, key) {
    const li = document.createElement("li");
    li.className = tone;
    li.textContent = text;
    if (key) li.dataset.key = key;
    el.log.insertBefore(li, el.log.firstChild);
    return li;
  }
  // The trolley whose count and "still out" list are shown: the one chosen, or else the one
  // the last device scanned belongs to.
  let shownTrolley = null;
  function setCount(counts) {
    if (!counts) return;
    if (trolleyId() === null) {
      shownTrolley = counts.trolley_id;
      el.count.textContent = counts.trolley + ": " + counts.text;
    } else if (counts.trolley_id === trolleyId()) {
      el.count.textContent = counts.text;
    }
  }
  function showQueue() {
    const waiting = readQueue().length;
    el.queue.hidden = waiting === 0;
    el.queue.textContent = waiting === 0 ? "" : "Offline: " + waiting + " scan" +
      (waiting === 1 ? "" : "s") + " saved on this device. They are sent when the connection returns.";
  }

  // --- undo: the last scan that can be undone (or the last one still waiting to be sent) ----
  let lastUndoable = null;
  function setUndo(key, tag) {
    lastUndoable = key ? { key: key, tag: tag } : null;
    el.undo.disabled = !lastUndoable;
  }

  // --- the queue: every scan goes through it, in order --------------------------------------
  let sending = false;
  function enqueue(entry) {
    const queue = readQueue();
    queue.push(entry);
    writeQueue(queue);
    pump();
  }
  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
        "X-CSRFToken": csrf },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data: data };
  }
  async function pump() {
    if (sending) return;
    sending = true;
    try {
      for (;;) {
        const queue = readQueue();
        if (!queue.length) break;
        const entry = queue[0];
        let result;
        try {
          result = await post(entry.path, entry.body);
        } catch (e) {
          offline(entry);
          break;
        }
        if (result.status >= 500 || result.status === 401 || result.status === 429 ||
            (result.status === 400 && result.data && result.data.error &&
             result.data.error.code === "csrf_failed")) {
          // Not the scan's fault: keep it and try again later (after logging in, if need be).
          held(entry, result);
          break;
        }
        writeQueue(readQueue().filter((e) => e.body.idempotency_key !== entry.body.idempotency_key));
        handle(entry, result);
      }
    } finally {
      sending = false;
      showQueue();
    }
  }
  function offline(entry) {
    if (entry.announced) return;
    const queue = readQueue();
    for (const e of queue) if (e.body.idempotency_key === entry.body.idempotency_key) e.announced = true;
    writeQueue(queue);
    show("queued", "Saved " + entry.label + ": no connection, it will be sent when you are back online.");
    const li = logLine("queued", entry.label + " — waiting to send", entry.body.idempotency_key);
    li.dataset.pending = "1";
    setUndo(entry.body.idempotency_key, entry.label);
  }
  function held(entry, result) {
    const why = result.status === 401 || (result.data && result.data.error &&
      result.data.error.code === "csrf_failed")
      ? "Your log-in has expired. Log in again in another tab, then come back: nothing is lost."
      : "Trolley could not record that just now; it will try again in a moment.";
    show("queued", why);
  }
  function pendingLine(key) {
    return el.log.querySelector('li[data-key="' + key + '"][data-pending="1"]');
  }
  function handle(entry, result) {
    const key = entry.body.idempotency_key;
    const waiting = pendingLine(key);
    if (waiting) waiting.remove();
    const data = result.data || {};
    if (result.status >= 400) {
      const error = data.error || { message: "That did not work.", code: "error" };
      if (error.code === "held_by_other" && entry.kind === "scan") {
        offerTransfer(entry, error.message);
      } else {
        show("bad", error.message, errorDetails(error));
      }
      logLine("bad", entry.label + ": " + error.message);
      return;
    }
    if (entry.kind === "all") return handleAll(data);
    const tone = !data.recorded ? "info" : data.tone;
    const message = data.message + (data.replayed ? " (already recorded)" : "");
    show(tone, message, data.warnings);
    setCount(data.counts);
    logLine(tone, data.message, key);
    if (data.can_undo) setUndo(key, data.asset_tag);
    refreshStillOut();
  }
  function errorDetails(error) {
    if (!Array.isArray(error.details)) return [];
    return error.details.map((d) => d.message || "").filter(Boolean);
  }
  function handleAll(data) {
    const out = data.items.filter((i) => i.state === "out").length;
    const refused = data.refused || [];
    show(refused.length ? "warn" : "ok",
      "Out with you: " + out + " device" + (out === 1 ? "" : "s") + " from " + (data.trolley ? data.trolley.name : "the trolley") + ".",
      refused.map((r) => r.message));
    setCount(data.counts);
    logLine(refused.length ? "warn" : "ok", "Took out everything available (" + out + ")");
    setUndo(null);
    refreshStillOut();
  }

  // --- a device out with someone else: offer a take-over -------------------------------------
  let transferEntry = null;
  function offerTransfer(entry, message) {
    transferEntry = entry;
    el.transferText.textContent = message;
    el.transfer.hidden = false;
    show("bad", message);
    el.transferYes.focus();
  }
  el.transferYes.addEventListener("click", () => {
    if (!transferEntry) return;
    const body = Object.assign({}, transferEntry.body, { transfer: true, idempotency_key: newKey() });
    enqueue({ kind: "scan", path: transferEntry.path, body: body, label: transferEntry.label });
    transferEntry = null;
    el.transfer.hidden = true;
    el.code.focus();
  });
  el.transferNo.addEventListener("click", () => {
    transferEntry = null;
    el.transfer.hidden = true;
    show("idle", "Left with its holder. Scan the next device.");
    el.code.focus();
  });

  // --- making a scan ----------------------------------------------------------------------
  function conditionFlags() {
    return Array.from(app.querySelectorAll('input[name="condition"]:checked'), (i) => i.value);
  }
  function resetCondition() {
    for (const box of app.querySelectorAll('.scan-condition input[type="checkbox"]')) box.checked = false;
    if (el.note) el.note.value = "";
  }
  // A label URL compared without its scheme (labels outlive a move to https) or a final "/".
  function plain(text) {
    return text.trim().toLowerCase().replace(/^https?:\/\//, "").replace(/\/+$/, "");
  }
  function matchTrolley(code) {
    const wanted = plain(code);
    for (const option of el.trolley.options) {
      if (!option.value) continue;
      if ((option.dataset.code && option.dataset.code.toLowerCase() === wanted) ||
          (option.dataset.label && plain(option.dataset.label) === wanted)) return option;
    }
    return null;
  }
  let lastCode = "";
  let lastAt = 0;
  function submitCode(raw, fromCamera) {
    const code = (raw || "").trim();
    if (!code) return;
    const now = Date.now();
    // The camera sees a label many times a second: it counts once while it stays in view.
    const stillInView = fromCamera && code === lastCode && now - lastAt < 1500;
    lastCode = code;
    lastAt = now;
    if (stillInView) return;
    const trolley = matchTrolley(code);
    if (trolley) {
      chooseTrolley(trolley.value, true);
      show("info", "Trolley: " + trolley.dataset.name + ". Now scan the devices " +
        (mode() === "in" ? "going back into it." : "coming out of it."));
      return;
    }
    const body = { idempotency_key: newKey(), mode: mode(), code: code };
    if (trolleyId() !== null) body.trolley = trolleyId();
    if (mode() === "out") {
      body.class_label = el.klass.value.trim();
      if (el.due.value) body.due_time = el.due.value;
    } else {
      const flags = conditionFlags();
      const repair = app.querySelector('input[name="put_in_repair"]');
      if (flags.length) body.condition = flags;
      if (repair && repair.checked) body.put_in_repair = true;
      if (el.note && el.note.value.trim()) body.condition_note = el.note.value.trim();
      resetCondition();
    }
    const label = code.length > 40 ? code.slice(code.lastIndexOf("/") + 1) : code;
    enqueue({ kind: "scan", path: "/api/v1/scans", body: body, label: label.toUpperCase(),
      camera: !!fromCamera });
  }
  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = el.code.value;
    el.code.value = "";
    submitCode(value, false);
    el.code.focus();
  });
  // A scanner acting as a keyboard types wherever the focus is: bring stray keys to the box.
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" ||
        target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.key.length !== 1) return;
    el.code.focus();
  });

  // --- undo -----------------------------------------------------------------------------
  el.undo.addEventListener("click", async () => {
    if (!lastUndoable) return;
    const key = lastUndoable.key;
    const waiting = readQueue();
    if (waiting.some((e) => e.body.idempotency_key === key)) {
      writeQueue(waiting.filter((e) => e.body.idempotency_key !== key));
      const line = pendingLine(key);
      if (line) line.classList.add("undone");
      show("info", "Removed " + lastUndoable.tag + " from the scans waiting to be sent.");
      setUndo(null);
      showQueue();
      return;
    }
    let result;
    try {
      result = await post("/api/v1/scans/undo", { idempotency_key: key });
    } catch (e) {
      show("bad", "No connection: the undo was not sent. Try again when you are back online.");
      return;
    }
    if (result.status >= 400) {
      show("bad", (result.data && result.data.error && result.data.error.message) || "That could not be undone.");
      setUndo(null);
      return;
    }
    show("info", result.data.message);
    setCount(result.data.counts);
    const line = el.log.querySelector('li[data-key="' + key + '"]');
    if (line) line.classList.add("undone");
    setUndo(null);
    refreshStillOut();
  });

  // --- take everything in the trolley: tap twice, so a stray tap does nothing --------------
  let armed = null;
  el.all.addEventListener("click", () => {
    if (trolleyId() === null) {
      show("warn", "Scan the trolley's label (or choose the trolley) first: then everything in it can go out.");
      return;
    }
    if (!armed) {
      el.all.classList.add("armed");
      el.all.textContent = "Tap again to take out everything in " + trolleyName();
      armed = setTimeout(disarm, 4000);
      return;
    }
    disarm();
    const body = { idempotency_key: newKey(), trolley: trolleyId(), all: true,
      class_label: el.klass.value.trim() };
    if (el.due.value) body.due_time = el.due.value;
    enqueue({ kind: "all", path: "/api/v1/loans", body: body, label: "Everything in " + trolleyName() });
  });
  function disarm() {
    clearTimeout(armed);
    armed = null;
    el.all.classList.remove("armed");
    el.all.textContent = "Take out everything in the trolley";
  }

  // --- the trolley: counts and what is still out -------------------------------------------
  let stillTimer = null;
  let stillAsked = 0;
  function refreshStillOut() {
    clearTimeout(stillTimer);
    stillTimer = setTimeout(loadStillOut, 400);
  }
  function stillOutId() { return trolleyId() === null ? shownTrolley : trolleyId(); }
  async function loadStillOut() {
    const id = stillOutId();
    const asked = ++stillAsked;
    if (id === null) {
      el.stillOut.textContent = "";
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "Scan a trolley's label or a device to see what is still out.";
      el.stillOut.appendChild(li);
      return;
    }
    try {
      const response = await fetch("/api/v1/loans/trolleys/" + id,
        { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      // Only the newest answer counts: an older one may have been overtaken by a scan.
      if (asked !== stillAsked || id !== stillOutId()) return;
      setCount(data.counts);
      el.stillOut.textContent = "";
      if (!data.still_out.length) {
        const li = document.createElement("li");
        li.className = "empty";
        li.textContent = "Nothing: every device from here is back.";
        el.stillOut.appendChild(li);
      }
      for (const item of data.still_out) {
        const li = document.createElement("li");
        li.textContent = item.asset_tag + " — " + item.holder + (item.overdue ? " (overdue)" : "");
        el.stillOut.appendChild(li);
      }
    } catch (e) { /* offline: the list refreshes with the next scan */ }
  }

  // --- remembering each person's choices on this device -------------------------------------
  // A trolley is "picked" when the person scanned its label or chose it here; one only
  // remembered from last time is offered for taking out, but never used for putting back.
  let prefs = {};
  try {
    prefs = JSON.parse(localStorage.getItem(PREFS_KEY) || "{}");
    localStorage.removeItem("trolley.scan.prefs.v1");  // once shared by everyone on the device
  } catch (e) { prefs = {}; }
  let picked = false;
  function savePrefs() {
    prefs.klass = el.klass.value;
    prefs.mode = mode();
    try { localStorage.setItem(PREFS_KEY, JSON.stringify(prefs)); } catch (e) { /* private mode */ }
  }
  function known(value) {
    return !!value && Array.from(el.trolley.options).some((o) => o.value === value);
  }
  function applyMode() {
    app.classList.toggle("mode-in", mode() === "in");
    app.classList.toggle("mode-out", mode() === "out");
  }
  function ready() {
    const id = trolleyId();
    if (mode() === "in") {
      show("idle", id === null ? "Ready to put devices back, each into its own trolley: scan each one."
        : "Ready to put devices back into " + trolleyName() + ": scan each one.");
    } else {
      show("idle", id === null ? "Ready: scan the trolley's label, then each device."
        : "Ready to take devices out of " + trolleyName() + ": scan each one.");
    }
  }
  function trolleyShown() {
    const option = el.trolley.options[el.trolley.selectedIndex];
    el.count.textContent = option && option.value
      ? option.dataset.out + " of " + option.dataset.total + " out" : "";
    shownTrolley = null;
    el.stillOut.textContent = "";
    setUndo(null);
    loadStillOut();
  }
  function chooseTrolley(value, scanned) {
    el.trolley.value = value;
    picked = value !== "";
    prefs.trolley = value;
    savePrefs();
    // Chosen by hand, a device label still in front of the camera counts again for the new
    // trolley; a trolley label just scanned counts once while it stays in view.
    if (!scanned) lastCode = "";
    trolleyShown();
  }
  (function loadPrefs() {
    const params = new URLSearchParams(location.search);
    picked = !!params.get("trolley") && trolleyId() !== null;
    if (prefs.klass && !el.klass.value) el.klass.value = prefs.klass;
    if (!params.get("mode") && prefs.mode) {
      const radio = el.setup.querySelector('input[name="mode"][value="' + prefs.mode + '"]');
      if (radio) radio.checked = true;
    }
    if (!picked) el.trolley.value = mode() === "out" && known(prefs.trolley) ? prefs.trolley : "";
    applyMode();
    trolleyShown();
    ready();
  })();
  el.setup.addEventListener("change", (event) => {
    if (event.target === el.trolley) {
      chooseTrolley(el.trolley.value, false);
      ready();
      return;
    }
    applyMode();
    savePrefs();
    lastCode = "";  // a label still in front of the camera counts again in the new mode
    if (event.target.name === "mode") {
      // Putting back: each device's own trolley unless one was scanned or chosen here.
      const wanted = mode() === "in" ? (picked ? el.trolley.value : "")
        : (el.trolley.value || (known(prefs.trolley) ? prefs.trolley : ""));
      if (wanted !== el.trolley.value) {
        el.trolley.value = wanted;
        trolleyShown();
      }
      ready();
      el.code.focus();
    }
  });
  el.setup.addEventListener("submit", (event) => event.preventDefault());
  el.klass.addEventListener("input", savePrefs);

  // --- the camera: BarcodeDetector where it exists, jsQR everywhere else (iPad Safari) ------
  let stream = null;
  let detector = null;
  let canvas = null;
  let scanning = false;
  async function makeDetector() {
    if (!("BarcodeDetector" in window)) return null;
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      return formats.includes("qr_code") ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
    } catch (e) { return null; }
  }
  async function readFrame() {
    const video = el.video;
    if (video.readyState < 2 || !video.videoWidth) return null;
    if (detector) {
      try {
        const codes = await detector.detect(video);
        if (codes.length) return codes[0].rawValue;
      } catch (e) { detector = null; }
      return null;
    }
    if (!window.jsQR) return null;
    const scale = Math.min(1, 720 / Math.max(video.videoWidth, video.videoHeight));
    const width = Math.round(video.videoWidth * scale);
    const height = Math.round(video.videoHeight * scale);
    canvas = canvas || document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0, width, height);
    const image = context.getImageData(0, 0, width, height);
    const found = window.jsQR(image.data, width, height, { inversionAttempts: "attemptBoth" });
    return found ? found.data : null;
  }
  async function loop() {
    if (!scanning) return;
    try {
      const text = await readFrame();
      if (text) {
        el.cameraBox.classList.add("seen");
        setTimeout(() => el.cameraBox.classList.remove("seen"), 400);
        submitCode(text, true);
      }
    } catch (e) { /* a bad frame: try the next one */ }
    setTimeout(loop, 150);
  }
  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      show("bad", "This browser cannot use the camera here. Type the asset tag or use a scanner.");
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: false,
        video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } } });
    } catch (e) {
      show("bad", "The camera could not start (" + (e.name || "no permission") +
        "). Allow the camera for this site, or type the asset tag.");
      return;
    }
    el.video.srcObject = stream;
    el.cameraBox.hidden = false;
    try { await el.video.play(); } catch (e) { /* muted inline video plays once metadata loads */ }
    detector = await makeDetector();
    el.cameraBox.dataset.decoder = detector ? "barcode-detector" : "jsqr";
    scanning = true;
    el.camera.textContent = "Stop the camera";
    show("info", "Camera on: hold a label in the frame.");
    loop();
  }
  function stopCamera() {
    scanning = false;
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    el.video.srcObject = null;
    el.cameraBox.hidden = true;
    el.camera.textContent = "Use the camera";
  }
  el.camera.addEventListener("click", () => (scanning ? stopCamera() : startCamera()));
  document.addEventListener("visibilitychange", () => { if (document.hidden && scanning) stopCamera(); });

  // --- start: send anything left from last time, and again whenever the network returns -----
  window.addEventListener("online", pump);
  setInterval(() => { if (readQueue().length) pump(); }, 5000);
  showQueue();
  pump();
})();
