// Irreversible and bulk actions ask first. A form marked data-confirm carries the question the
// server asks with (its words and token, written into the page when it was built), shown here in
// a native dialog with Cancel focused; yes posts the form once, confirmed. The server still checks
// the token, so a figure that changed since the page was built makes it ask again on its own page.
(function () {
  "use strict";
  let dialog = null;

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("role", "alertdialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-labelledby", "confirm-dialog-question");
    dialog.setAttribute("aria-describedby", "confirm-dialog-consequences");
    dialog.innerHTML =
      '<h2 id="confirm-dialog-question"></h2>' +
      '<ul id="confirm-dialog-consequences" class="consequences"></ul>' +
      '<form method="dialog" class="confirm-form">' +
      '<button value="cancel" class="cancel">Cancel</button> ' +
      '<button value="yes" class="danger yes"></button></form>';
    document.body.appendChild(dialog);
    return dialog;
  }

  function ask(form, submitter) {
    const d = dialog || build();
    d.querySelector("h2").textContent = form.dataset.confirmQuestion;
    const list = d.querySelector("ul");
    list.replaceChildren();
    JSON.parse(form.dataset.confirmConsequences || "[]").forEach(function (line) {
      const item = document.createElement("li");
      item.textContent = line;
      list.appendChild(item);
    });
    d.querySelector("button.yes").textContent = form.dataset.confirmButton;
    d.returnValue = "";
    d.onclose = function () {
      if (d.returnValue === "yes") {
        let field = form.querySelector('input[name="confirmed"]');
        if (!field) {
          field = document.createElement("input");
          field.type = "hidden";
          field.name = "confirmed";
          form.appendChild(field);
        }
        field.value = form.dataset.confirmToken;
        form.dataset.confirmed = "yes";
        form.requestSubmit(submitter || undefined);
      } else if (submitter) {
        submitter.focus(); // Cancel or Escape: back where the person was
      }
    };
    d.showModal();
    d.querySelector("button.cancel").focus();
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
    if (form.dataset.confirmed === "yes") {
      delete form.dataset.confirmed;
      return; // the confirmed post goes through as an ordinary submission
    }
    if (!form.dataset.confirmToken) return; // no question in the page: the server's page asks
    event.preventDefault();
    ask(form, event.submitter);
  });
  // Browser tests and anything else waiting to click a confirmed action wait for this mark.
  document.documentElement.setAttribute("data-confirm-ready", "");
})();
