// What is wrong with the open page's layout at the current width: the page scrolling sideways,
// anything reaching past the screen's edge outside a box that scrolls (or clips) it, and, at touch
// widths, controls smaller than a fingertip. Evaluated by tests/browser/layout.py.
({ touch, px }) => {
  const doc = document.documentElement;
  const width = doc.clientWidth;
  const problems = [];
  const cut = [];
  const small = [];
  const name = (el) => {
    const classes = typeof el.className === "string" ? el.className.trim().split(/\s+/) : [];
    const text = (el.innerText || el.value || el.getAttribute("aria-label") || "").trim();
    return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      classes.filter(Boolean).map((c) => "." + c).join("") + ' "' + text.slice(0, 30) + '"';
  };
  const inBox = (el) => {
    for (let n = el.parentElement; n && n !== document.body; n = n.parentElement) {
      if (getComputedStyle(n).overflowX !== "visible") return true;
    }
    return false;
  };
  if (doc.scrollWidth > width) {
    problems.push(`the page scrolls sideways: ${doc.scrollWidth} px in ${width} px`);
  }
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest(".skip, .visually-hidden")) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    if ((r.right > width + 1 || r.left < -1) && !inBox(el)) {
      cut.push(`cut off: ${name(el)} spans ${Math.round(r.left)}..${Math.round(r.right)} px`);
    }
  }
  if (touch) {
    const targets = "button, .button, select, textarea, summary, nav a, " +
      "input:not([type=checkbox]):not([type=radio]):not([type=hidden])";
    for (const el of document.querySelectorAll(targets)) {
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height) continue;
      if (r.height < px - 0.5 || r.width < px - 0.5) {
        const size = `${Math.round(r.width)}×${Math.round(r.height)} px`;
        small.push(`too small to tap: ${name(el)} is ${size}`);
      }
    }
  }
  // The first few of each kind: one cause usually shows up on many elements.
  return problems.concat(cut.slice(0, 4), small.slice(0, 4));
}
