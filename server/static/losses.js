// Loss reports: the live 72-hour countdown, lost mode's state without reloading, and printing.
(function () {
  "use strict";

  function part(n, unit) { return n + " " + unit; }

  function describe(ms) {
    const total = Math.floor(Math.abs(ms) / 1000);
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = total % 60;
    if (hours) return part(hours, "h") + " " + part(minutes, "min") + " " + part(seconds, "s");
    return part(minutes, "min") + " " + part(seconds, "s");
  }

  const clocks = Array.from(document.querySelectorAll("[data-deadline]"));
  function tick() {
    const now = Date.now();
    for (const el of clocks) {
      const left = Date.parse(el.getAttribute("data-deadline")) - now;
      el.textContent = left > 0 ? describe(left) + " left" : "Overdue by " + describe(left);
      const gone = 72 * 3600 * 1000 - left;
      const stage = left <= 0 ? "overdue" : gone >= 48 * 3600 * 1000 ? "48h" : gone >= 24 * 3600 * 1000 ? "24h" : "running";
      el.className = "countdown stage-" + stage;
    }
  }
  if (clocks.length) {
    tick();
    setInterval(tick, 1000);
  }

  const lostMode = document.querySelector("[data-lost-mode]");
  const waiting = new Set(["pending", "turning_off"]);
  async function refresh() {
    try {
      const id = lostMode.getAttribute("data-lost-mode");
      const response = await fetch("/api/v1/losses/" + encodeURIComponent(id),
        { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (!response.ok) return;
      const body = await response.json();
      lostMode.textContent = body.lost_mode.label;
      lostMode.className = "lost-mode lm-" + body.lost_mode.state;
      if (waiting.has(body.lost_mode.state)) setTimeout(refresh, 3000);
    } catch (e) {
      setTimeout(refresh, 10000);
    }
  }
  if (lostMode && waiting.has(lostMode.className.replace(/^.*lm-/, ""))) setTimeout(refresh, 3000);

  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", function () { window.print(); });
  }
})();
