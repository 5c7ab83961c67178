// Leaver record: the print button (inline handlers are not allowed by the page's CSP).
(function () {
  "use strict";
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", function () { window.print(); });
  }
})();
