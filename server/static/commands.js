// Keeps command states on the device page live ("Lost mode pending → active") without reloading.
(function () {
  "use strict";
  const table = document.querySelector("[data-live-commands]");
  if (!table) return;
  const tag = table.getAttribute("data-live-commands");
  const finished = new Set(["done", "failed", "rejected", "expired", "cancelled"]);
  async function refresh() {
    try {
      const response = await fetch("/api/v1/commands?limit=10&asset_tag=" + encodeURIComponent(tag),
        { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (!response.ok) return;
      const body = await response.json();
      let open = false;
      for (const c of body.items) {
        const row = table.querySelector('[data-command-id="' + c.id + '"]');
        if (!row) continue;
        const state = row.querySelector(".command-state span");
        state.textContent = c.status.replace("_", " ");
        state.className = "status cs-" + c.status;
        const detail = row.querySelector(".command-detail");
        detail.textContent = c.type === "wipe_photos" && c.status === "done"
          ? "wiped (" + (c.result.deleted || 0) + " photos deleted)" : c.detail;
        if (!finished.has(c.status)) open = true;
      }
      if (open) setTimeout(refresh, 2000);
    } catch (e) {
      setTimeout(refresh, 5000);
    }
  }
  setTimeout(refresh, 1500);
})();
