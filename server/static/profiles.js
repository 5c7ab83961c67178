// Live validation for the profile editor: sends the YAML to the validate endpoint as the
// computing lead types and shows every problem with its line, plus each platform's output.
(function () {
  "use strict";
  var form = document.getElementById("profile-editor");
  if (!form) { return; }
  var textarea = document.getElementById("yaml_text");
  var errorsBox = document.getElementById("profile-errors");
  var previewsBox = document.getElementById("profile-previews");
  var url = form.getAttribute("data-validate-url");
  var csrf = form.getAttribute("data-csrf");
  var timer = null;
  var latest = 0;

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function goToLine(line) {
    var lines = textarea.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
    var end = start + (lines[line - 1] || "").length;
    textarea.focus();
    textarea.setSelectionRange(start, end);
  }

  function describe(error) {
    var item = el("li");
    if (error.line) {
      item.appendChild(el("strong", "Line " + error.line));
      item.appendChild(document.createTextNode(" · "));
      item.setAttribute("data-line", String(error.line));
    }
    if (error.key_path) {
      item.appendChild(el("code", error.key_path));
      item.appendChild(document.createTextNode(": "));
    }
    var text = error.message;
    if (error.suggestion) { text += " (did you mean '" + error.suggestion + "'?)"; }
    if (error.allowed && error.allowed.length) { text += " Allowed: " + error.allowed.join(", ") + "."; }
    item.appendChild(document.createTextNode(text));
    return item;
  }

  function showErrors(errors) {
    errorsBox.textContent = "";
    if (!errors.length) {
      errorsBox.appendChild(el("p", "No problems found.", "ok"));
      return;
    }
    var noun = errors.length === 1 ? "problem" : "problems";
    var head = el("p", errors.length + " " + noun + " to fix before this can be saved:", "error");
    errorsBox.appendChild(head);
    var list = el("ul");
    errors.forEach(function (error) { list.appendChild(describe(error)); });
    errorsBox.appendChild(list);
  }

  function showPreviews(previews) {
    if (!previewsBox) { return; }
    var open = {};
    previewsBox.querySelectorAll("details[open]").forEach(function (d) {
      open[d.getAttribute("data-target")] = true;
    });
    previewsBox.textContent = "";
    if (!previews.length) {
      previewsBox.appendChild(el("p", "Fix the problems above to see the outputs.", "empty"));
      return;
    }
    previews.forEach(function (preview) {
      var details = el("details", null, "preview");
      details.setAttribute("data-target", preview.target);
      if (open[preview.target]) { details.open = true; }
      var count = preview.warnings.length;
      details.appendChild(el("summary", preview.label + " · " + count + (count === 1 ? " warning" : " warnings")));
      if (count) {
        var list = el("ul", null, "warnings");
        preview.warnings.forEach(function (w) {
          var item = el("li");
          item.appendChild(el("code", w.setting));
          item.appendChild(document.createTextNode(": " + w.message));
          list.appendChild(item);
        });
        details.appendChild(list);
      }
      details.appendChild(el("pre", preview.content, "code"));
      previewsBox.appendChild(details);
    });
  }

  function validate() {
    var ticket = ++latest;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ yaml_text: textarea.value })
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (ticket !== latest) { return; }  // a newer check is on its way
      if (!result.ok) {
        var message = (result.body.error && result.body.error.message) || "The check failed.";
        showErrors([{ message: message, allowed: [] }]);
        return;
      }
      showErrors(result.body.errors);
      showPreviews(result.body.previews);
    }).catch(function () {
      if (ticket === latest) {
        errorsBox.textContent = "";
        errorsBox.appendChild(el("p", "Could not check the profile just now; it is checked again when you save.", "muted"));
      }
    });
  }

  textarea.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(validate, 400);
  });
  errorsBox.addEventListener("click", function (event) {
    var item = event.target.closest("li[data-line]");
    var line = item && parseInt(item.getAttribute("data-line"), 10);
    if (line) { goToLine(line); }
  });
}());
