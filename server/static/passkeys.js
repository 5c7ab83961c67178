// Passkeys: add one on the account page, and answer the server's challenge at log-in or before
// approving. The server makes every challenge and checks every answer; this only carries them.
(function () {
  "use strict";

  function toBytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    return Uint8Array.from(atob(padded), function (c) { return c.charCodeAt(0); });
  }

  function toText(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) { return Object.assign({}, d, { id: toBytes(d.id) }); });
  }

  async function post(url, csrf, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      throw new Error((answer.error && answer.error.message) || "That did not work. Try again.");
    }
    return answer;
  }

  async function create(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    const made = await navigator.credentials.create({ publicKey: options });
    return {
      id: made.id,
      rawId: toText(made.rawId),
      type: made.type,
      response: {
        clientDataJSON: toText(made.response.clientDataJSON),
        attestationObject: toText(made.response.attestationObject),
        transports: made.response.getTransports ? made.response.getTransports() : [],
      },
      clientExtensionResults: made.getClientExtensionResults(),
    };
  }

  async function get(options) {
    options.challenge = toBytes(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    const used = await navigator.credentials.get({ publicKey: options });
    return {
      id: used.id,
      rawId: toText(used.rawId),
      type: used.type,
      response: {
        clientDataJSON: toText(used.response.clientDataJSON),
        authenticatorData: toText(used.response.authenticatorData),
        signature: toText(used.response.signature),
        userHandle: used.response.userHandle ? toText(used.response.userHandle) : null,
      },
      clientExtensionResults: used.getClientExtensionResults(),
    };
  }

  document.querySelectorAll("[data-passkey]").forEach(function (box) {
    const button = box.querySelector("button");
    const status = box.querySelector("[data-passkey-status]");
    const csrf = box.dataset.csrf;
    if (!window.PublicKeyCredential) {
      status.textContent = "This browser cannot use passkeys.";
      button.disabled = true;
      return;
    }
    button.addEventListener("click", async function (event) {
      event.preventDefault();
      button.disabled = true;
      status.textContent = "Follow your browser's instructions…";
      try {
        const options = await post(box.dataset.options, csrf);
        let body;
        if (box.dataset.passkey === "add") {
          const name = box.querySelector("input[name=name]");
          body = { name: name ? name.value : "", credential: await create(options) };
        } else {
          body = { credential: await get(options) };
        }
        const done = await post(box.dataset.verify, csrf, body);
        status.textContent = "Done.";
        window.location.assign(done.next);
      } catch (error) {
        status.textContent = error.name === "NotAllowedError"
          ? "The passkey was not used. Try again when you are ready."
          : error.message;
        button.disabled = false;
      }
    });
    box.dataset.ready = "true"; // a click before this did nothing
  });
})();
