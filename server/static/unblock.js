// The unblock request form: as a teacher types or pastes addresses, show what each will unblock
// (the site or pages a filter can match), as the server will keep it.
(function () {
  "use strict";
  const box = document.getElementById("urls");
  const preview = document.getElementById("unblock-preview");
  if (!box || !preview) return;
  const list = preview.querySelector("ul");
  let timer = null;
  let asked = 0;

  function line(className, typed, words) {
    const li = document.createElement("li");
    li.className = className;
    if (typed) {
      const span = document.createElement("span");
      span.className = "typed";
      span.textContent = typed;
      li.appendChild(span);
      li.appendChild(document.createTextNode(": " + words));
    } else {
      li.textContent = words;
    }
    return li;
  }

  async function refresh() {
    const text = box.value;
    const mine = ++asked;
    let items = [];
    if (text.trim()) {
      try {
        const response = await fetch(preview.dataset.previewUrl + "?urls=" + encodeURIComponent(text),
          { credentials: "same-origin", headers: { "Accept": "application/json" } });
        if (!response.ok) return;
        items = (await response.json()).items;
      } catch (e) { return; /* offline: the page checks again when the request is sent */ }
    }
    // Only the newest answer counts: the teacher may have typed on since.
    if (mine !== asked) return;
    list.textContent = "";
    if (!items.length) {
      list.appendChild(line("empty", "", "Paste the web address from the browser's address bar: " +
        "each is shown here as the site or pages it opens."));
    }
    for (const item of items) {
      list.appendChild(item.problem ? line("field-error", item.typed, item.problem)
        : line("reach", item.typed, item.reach));
    }
  }

  box.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
})();
