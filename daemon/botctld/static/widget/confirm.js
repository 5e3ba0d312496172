  // ---------------------------------------------------------------------------------------------
  // Confirmations: a change a bot asked for over MCP (issue #18) waits for the signed-in visitor.
  // botctl.confirm(id) fetches the summary from the daemon (never from the page or the bot), shows it
  // in the conversation with Confirm and Cancel (native buttons: Enter, Space and clicks alike; focus
  // moves to Confirm), and sends the answer with the visitor's own token. Resolves to
  // {status: "confirmed" | "cancelled" | "error", code?, result?}.

  var CONFIRMATION_ID = /^cnf_[A-Za-z0-9_-]{8,60}$/;

  function confirmLog() { return ui.host.shadowRoot.querySelector(".log"); }

  function confirmNote(card, kind, text, code) {
    var p = h("p", { class: kind === "err" ? "form-error" : "desc", role: kind === "err" ? "alert" : "status", text: text });
    if (code) { card.setAttribute("data-code", code); }
    card.appendChild(p);
    confirmLog().scrollTop = confirmLog().scrollHeight;
    return p;
  }

  function confirmCard(c, resolve) {
    var headId = "botctl-confirm-" + c.confirmation_id.slice(4, 16);
    var details = (Array.isArray(c.details) ? c.details : []).map(function (d) {
      return [h("dt", { text: String(d.label || d.field || "") }), h("dd", { text: String(d.value) })];
    });
    var yes = h("button", { type: "button", class: "btn primary", text: t("confirm") });
    var no = h("button", { type: "button", class: "btn", text: t("cancel") });
    var row = h("div", { class: "row" }, no, yes);
    var card = h("div", { class: "msg bot confirm result", role: "group", "aria-labelledby": headId,
      "data-confirmation": c.confirmation_id },
    h("h3", { id: headId, text: t("confirm.title") }), h("p", { class: "t", text: String(c.title || c.action) }),
    details.length ? h("dl", null, details) : null, row);

    function answer(decision) {
      yes.disabled = true;
      no.disabled = true;
      callAsVisitor("/confirmations/" + encodeURIComponent(c.confirmation_id), { decision: decision }).then(function (res) {
        row.remove();
        if (!res.ok) {
          confirmNote(card, "err", humanError(res), res.code);
          resolve({ status: "error", code: res.code });
          return;
        }
        card.setAttribute("data-status", decision === "confirm" ? "confirmed" : "cancelled");
        if (decision === "cancel") {
          confirmNote(card, "ok", t("confirm.cancelled"));
          resolve({ status: "cancelled" });
          return;
        }
        confirmNote(card, "ok", t("done"));
        if (res.data.result !== undefined && typeof renderResult === "function") {
          card.appendChild(renderResult(state.catalog[c.action] || { name: c.action }, res.data.result));
        }
        resolve({ status: "confirmed", result: res.data.result });
      });
    }
    yes.addEventListener("click", function () { answer("confirm"); });
    no.addEventListener("click", function () { answer("cancel"); });
    return { card: card, focus: yes };
  }

  function showConfirmation(id) {
    ui.open();
    return new Promise(function (resolve) {
      if (typeof id !== "string" || !CONFIRMATION_ID.test(id)) {
        resolve({ status: "error", code: "not_found" });
        return;
      }
      currentToken().then(function (token) {
        if (!token) { return { ok: false, code: "identity_required" }; }
        return request("GET", "/confirmations/" + encodeURIComponent(id), undefined, token);
      }).then(function (res) {
        var code = !res.ok ? res.code || "not_found" : !res.data || res.data.confirmation_id !== id ? "not_found"
          : res.data.status !== "pending" ? "confirmation_used" : !(res.data.expires_in_s > 0) ? "confirmation_expired" : null;
        if (code) {
          confirmLog().appendChild(h("div", { class: "msg err", role: "alert", "data-code": code,
            text: humanError(res.ok ? { code: code } : res) }));
          resolve({ status: "error", code: code });
          return;
        }
        var built = confirmCard(res.data, resolve);
        confirmLog().appendChild(built.card);
        confirmLog().scrollTop = confirmLog().scrollHeight;
        built.focus.focus();
      });
    });
  }
