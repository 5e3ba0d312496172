  // ---------------------------------------------------------------------------------------------
  // Confirmations: a change a bot asked for over MCP (issue #18) waits for the signed-in visitor.
  // botctl.confirm(id) fetches the summary from the daemon (never from the page or the bot), shows it
  // in the conversation with Confirm and Cancel (native buttons: Enter, Space and clicks alike; focus
  // moves to Confirm), and sends the answer with the visitor's own token. Resolves to
  // {status: "confirmed" | "cancelled" | "error", code?, result?}. botctl.confirm() without an id shows
  // every change still waiting for the signed-in visitor (GET /confirmations), each card once. (Not on
  // every opening of the panel: a site whose token is refused would see a refusal it did not ask for.)

  var CONFIRMATION_ID = /^cnf_[A-Za-z0-9_-]{8,60}$/;
  var confirmCards = {};  // confirmation id → its card, while on screen

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

  // One card per id on screen; everyone who asked for it (botctl.confirm(id), the panel opening) hears the answer.
  function placeCard(c, resolve) {
    var on = confirmCards[c.confirmation_id];
    if (on && on.card.isConnected) {
      on.resolvers.push(resolve);
      return on;
    }
    var resolvers = [resolve];
    var built = confirmCard(c, function (a) { resolvers.forEach(function (r) { r(a); }); });
    built.resolvers = resolvers;
    confirmCards[c.confirmation_id] = built;
    confirmLog().appendChild(built.card);
    confirmLog().scrollTop = confirmLog().scrollHeight;
    return built;
  }

  function showPending() {
    if (!signedIn()) { return Promise.resolve([]); }
    return currentToken().then(function (token) {
      return token ? request("GET", "/confirmations", undefined, token) : { ok: false };
    }).then(function (res) {
      var list = res.ok && res.data && Array.isArray(res.data.confirmations) ? res.data.confirmations : [];
      var fresh = list.filter(function (c) {
        return c && typeof c.confirmation_id === "string" && CONFIRMATION_ID.test(c.confirmation_id) &&
          !confirmCards[c.confirmation_id] && c.status === "pending";
      });
      var placed = fresh.map(function (c) { return placeCard(c, function () {}); });
      if (placed.length) { placed[0].focus.focus(); }
      return fresh.map(function (c) { return c.confirmation_id; });
    });
  }

  function showConfirmation(id) {
    ui.open();
    if (id === undefined) { return showPending(); }
    return new Promise(function (resolve) {
      if (typeof id !== "string" || !CONFIRMATION_ID.test(id)) {
        resolve({ status: "error", code: "not_found" });
        return;
      }
      if (confirmCards[id] && confirmCards[id].card.isConnected && !confirmCards[id].focus.disabled) {
        confirmCards[id].focus.focus();  // already on screen: not twice
        resolve({ status: "shown" });
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
        var placed = placeCard(res.data, resolve);
        if (!placed.focus.disabled) { placed.focus.focus(); }
      });
    });
  }
