// Every page: on narrow screens the main menu folds behind a "Menu" button, and a table wider
// than the screen scrolls inside its own box instead of widening the page. Without scripts the
// menu stays open and noscript.css lets each table scroll itself.
(function () {
  "use strict";
  // Set before the first paint, so a phone never flashes the whole menu open.
  document.documentElement.classList.add("js");

  function menu() {
    const button = document.getElementById("menu-button");
    const nav = document.getElementById("main-nav");
    if (!button || !nav) return;
    // Folded away, the menu must still say that something is waiting.
    const count = nav.querySelector(".bell .count, .bell .tag");
    if (count && count.textContent.trim()) {
      const badge = document.createElement("span");
      badge.className = "count";
      badge.textContent = count.textContent.trim();
      const words = document.createElement("span");
      words.className = "visually-hidden";
      words.textContent = " unread";
      badge.appendChild(words);
      button.append(" ", badge);
    }
    function setOpen(open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
    }
    button.addEventListener("click", function () {
      setOpen(button.getAttribute("aria-expanded") !== "true");
    });
    nav.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        setOpen(false);
        button.focus();
      }
    });
  }

  // The name a screen reader announces for a table's scroll box: its caption, its own label,
  // or the nearest heading before it.
  function tableName(table) {
    if (table.caption && table.caption.textContent.trim()) return table.caption.textContent.trim();
    if (table.getAttribute("aria-label")) return table.getAttribute("aria-label");
    for (let node = table; node && node !== document.body; node = node.parentElement) {
      for (let before = node.previousElementSibling; before; before = before.previousElementSibling) {
        const headings = /^H[1-4]$/.test(before.tagName) ? [before] : before.querySelectorAll("h1, h2, h3, h4");
        const heading = headings[headings.length - 1];
        if (heading && heading.textContent.trim()) return heading.textContent.trim();
      }
    }
    return "Table";
  }

  // A box that scrolls sideways must be reachable by keyboard, so it takes focus only then.
  function markScrolling(box) {
    if (box.scrollWidth > box.clientWidth + 1) {
      box.setAttribute("tabindex", "0");
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", box.dataset.name + " (scrolls sideways)");
    } else {
      box.removeAttribute("tabindex");
      box.removeAttribute("role");
      box.removeAttribute("aria-label");
    }
  }

  function tables() {
    const boxes = [];
    document.querySelectorAll("main table").forEach(function (table) {
      if (table.parentElement.classList.contains("table-scroll")) return;
      const box = document.createElement("div");
      box.className = "table-scroll";
      box.dataset.name = tableName(table);
      table.parentNode.insertBefore(box, table);
      box.appendChild(table);
      boxes.push(box);
    });
    boxes.forEach(markScrolling);
    if (window.ResizeObserver) {
      const observer = new ResizeObserver(function (entries) {
        entries.forEach(function (entry) { markScrolling(entry.target); });
      });
      boxes.forEach(function (box) { observer.observe(box); });
    }
  }

  function start() {
    menu();
    tables();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
