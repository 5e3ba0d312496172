  // ---------------------------------------------------------------------------------------------
  // The UI.

  var state = { config: null, catalog: {}, status: "loading", conversation: null, busy: false };

  var ui = (function () {
    var host = document.createElement("div");
    host.id = "botctl-widget";
    host.setAttribute("data-state", "loading");
    var root = host.attachShadow({ mode: "open" });
    adoptStyles(root);

    var launcher = h("button", { class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "botctl-panel",
      "aria-label": "Support chat", "aria-haspopup": "dialog" }, icon("chat"), icon("close"));
    launcher.firstChild.setAttribute("class", "i-open");
    launcher.lastChild.setAttribute("class", "i-close");
    var title = h("h2", { id: "botctl-title", text: "Support" });
    var who = h("p", { class: "who", text: "Connecting…" });
    var closeBtn = h("button", { class: "icon-btn close", type: "button", "aria-label": "Close chat" }, icon("close"));
    var log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Conversation", tabindex: "0" });
    var tray = h("div", { class: "sheet tray", id: "botctl-tray", role: "region", "aria-labelledby": "botctl-tray-h", hidden: true });
    var sheet = h("div", { class: "sheet form-sheet", role: "region", "aria-labelledby": "botctl-form-h", hidden: true });
    var input = h("input", { id: "botctl-q", type: "text", maxlength: 2000, autocomplete: "off", placeholder: "Ask a question…", disabled: true });
    var toolsBtn = h("button", { class: "icon-btn tools", type: "button", "aria-expanded": "false", "aria-controls": "botctl-tray",
      "aria-label": "Things I can do", title: "Things I can do", hidden: true }, icon("bolt"));
    var sendBtn = h("button", { class: "icon-btn send", type: "submit", "aria-label": "Send", disabled: true }, icon("send"));
    var composer = h("form", { class: "composer", novalidate: true },
      toolsBtn, h("label", { for: "botctl-q", class: "sr-only", text: "Ask a question" }), input, sendBtn);
    var panel = h("section", { class: "panel", id: "botctl-panel", role: "dialog", "aria-modal": "false",
      "aria-labelledby": "botctl-title", "aria-describedby": "botctl-who", hidden: true },
    h("header", { class: "head" }, h("div", { class: "titles" }, title, who), closeBtn),
    log, tray, sheet, composer, h("p", { class: "foot", text: "Answers come from this site's help pages." }));
    who.id = "botctl-who";
    root.appendChild(launcher);
    root.appendChild(panel);

    var lastFocus = null;
    var formReturn = null;

    function isOpen() { return !panel.hidden; }

    function open() {
      if (isOpen()) { return; }
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      host.setAttribute("data-open", "true");
      scrollDown();
      (input.disabled ? closeBtn : input).focus();
      if (ENDPOINT && refreshable() && !identity.pending && Date.now() - identity.fetchedAt > 60000) { refreshIdentity(); }
    }

    function close() {
      if (!isOpen()) { return; }
      panel.hidden = true;
      hideTray();
      launcher.setAttribute("aria-expanded", "false");
      host.removeAttribute("data-open");
      launcher.focus();
    }

    launcher.addEventListener("click", function () { if (isOpen()) { close(); } else { open(); } });
    closeBtn.addEventListener("click", close);
    root.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && isOpen()) {
        ev.stopPropagation();
        if (!sheet.hidden) { closeSheet(); } else if (!tray.hidden) { hideTray(); toolsBtn.focus(); } else { close(); }
        return;
      }
      if (ev.key === "Tab" && isOpen() && window.matchMedia && window.matchMedia("(max-width: 480px)").matches) {
        trapFocus(ev); // full-screen on a phone: keep Tab inside the panel
      }
    });

    function focusables() {
      return Array.prototype.filter.call(panel.querySelectorAll("button, input, select, textarea, a[href], [tabindex='0'], summary"), function (el) {
        return !el.disabled && el.getClientRects().length > 0;
      });
    }

    function trapFocus(ev) {
      var items = focusables();
      if (!items.length) { return; }
      var first = items[0], last = items[items.length - 1], active = root.activeElement;
      if (ev.shiftKey && active === first) { ev.preventDefault(); last.focus(); } else if (!ev.shiftKey && active === last) { ev.preventDefault(); first.focus(); }
    }

    function scrollDown() { log.scrollTop = log.scrollHeight; }

    function message(kind, content, ref) {
      var m = h("div", { class: "msg " + kind });
      if (typeof content === "string") {
        content.split(/\n{2,}/).forEach(function (p) { m.appendChild(h("p", { text: p })); });
      } else { add(m, content); }
      if (ref) { m.appendChild(h("span", { class: "ref", text: "Reference: " + ref })); }
      log.appendChild(m);
      scrollDown();
      return m;
    }

    function errorMessage(res) {
      var m = message("err", humanError(res), res.requestId);
      if ((res.code === "identity_required" || res.code === "invalid_identity") && SIGN_IN_URL) {
        m.insertBefore(h("p", null, h("a", { href: SIGN_IN_URL, text: "Sign in" })), m.querySelector(".ref"));
      }
      m.setAttribute("data-code", res.code);
      return m;
    }

    function typing() {
      log.setAttribute("aria-busy", "true");
      var m = message("bot typing", "Thinking…");
      return function () { m.remove(); log.removeAttribute("aria-busy"); };
    }

    // -- identity line and the action tray -----------------------------------------------------

    function renderIdentity() {
      if (state.status === "error") { return; }
      var c = identity.claims || {};
      var name = identity.token ? (typeof c.name === "string" && c.name) || (typeof c.email === "string" && c.email) || "you" : null;
      who.textContent = name ? "Signed in as " + name : "Not signed in";
      host.setAttribute("data-identity", name ? "signed-in" : "anonymous");
      if (!tray.hidden) { renderTray(); }
    }

    function actionsFor() {
      var cfg = state.config;
      if (!cfg || !cfg.actions || (cfg.features && cfg.features.actions === false)) { return []; }
      var names = [].concat(cfg.actions.anonymous || [], cfg.actions.signed_in || []);
      return names.map(function (n) { return state.catalog[n]; }).filter(Boolean);
    }

    function needsSignIn(a) { return !!a.customer_specific && !signedIn(); }

    function actionButton(a, cls) {
      var locked = needsSignIn(a);
      var vendor = cls === "act" && a.vendor ? a.vendor : "";
      var btn = h("button", { type: "button", class: cls + (locked ? " locked" : ""), "data-action": a.name },
        actionLabel(a),
        vendor ? h("small", { text: vendor }) : null,
        locked ? h("small", { class: "lock", text: "Sign in to use this" }) : null);
      btn.addEventListener("click", function () { startAction(a, btn); });
      return btn;
    }

    function renderTray() {
      var list = actionsFor();
      list.sort(function (x, y) { return needsSignIn(x) - needsSignIn(y); });
      var ul = h("ul");
      list.forEach(function (a) { ul.appendChild(h("li", null, actionButton(a, "act"))); });
      tray.replaceChildren(
        h("h3", { id: "botctl-tray-h", text: "Things I can do" }),
        h("p", { class: "desc", text: signedIn() ? "For your account:" : "Some need you to sign in on this site first." }),
        ul);
    }

    function showTray() {
      closeSheet(true);
      renderTray();
      tray.hidden = false;
      toolsBtn.setAttribute("aria-expanded", "true");
      var first = tray.querySelector("button");
      if (first) { first.focus(); }
    }

    function hideTray() {
      tray.hidden = true;
      toolsBtn.setAttribute("aria-expanded", "false");
    }

    toolsBtn.addEventListener("click", function () { if (tray.hidden) { showTray(); } else { hideTray(); } });

    // -- running an action ---------------------------------------------------------------------

    function startAction(a, from) {
      hideTray();
      if (needsSignIn(a)) {
        var m = message("bot", [h("p", { text: "Sign in to use this: “" + actionLabel(a) + "” needs to know who you are." }),
          SIGN_IN_URL ? h("p", null, h("a", { href: SIGN_IN_URL, text: "Sign in" })) : h("p", { text: "Please sign in on this site, then try again." })]);
        m.setAttribute("data-code", "sign_in_required");
        input.focus();
        return;
      }
      var fields = fieldsOf(a.params);
      if (!fields.length) { run(a, {}, null); return; }
      openSheet(a, fields, from);
    }

    function openSheet(a, fields, from) {
      formReturn = from || toolsBtn;
      var built = fields.map(buildField);
      var formError = h("p", { class: "form-error", role: "alert", hidden: true });
      var submit = h("button", { type: "submit", class: "btn primary", text: actionLabel(a) });
      var cancel = h("button", { type: "button", class: "btn", text: "Cancel" });
      var form = h("form", { novalidate: true, "data-action": a.name },
        h("h3", { id: "botctl-form-h", text: actionLabel(a) }),
        a.description ? h("p", { class: "desc", text: a.description }) : null,
        built.map(function (b) { return b.el; }), formError, h("div", { class: "row" }, cancel, submit));
      cancel.addEventListener("click", function () { closeSheet(); });
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        if (state.busy) { return; }
        var params = {};
        var firstBad = null;
        built.forEach(function (b) {
          var r = readField(b);
          showFieldError(b, r[1]);
          if (r[1] && !firstBad) { firstBad = b.input; }
          if (r[0] !== undefined) { params[b.field.key] = r[0]; }
        });
        if (firstBad) { firstBad.focus(); return; }
        formError.hidden = true;
        submit.disabled = true;
        run(a, params, function (res) {
          submit.disabled = false;
          if (res.code === "invalid_params") { // the daemon's check: keep the form to fix
            formError.textContent = humanError(res);
            formError.hidden = false;
            return true;
          }
          closeSheet(true);
          return false;
        });
      });
      sheet.replaceChildren(form);
      sheet.hidden = false;
      var first = form.querySelector("input, select, textarea");
      if (first) { first.focus(); }
    }

    function closeSheet(quiet) {
      if (sheet.hidden) { return; }
      sheet.hidden = true;
      sheet.replaceChildren();
      if (!quiet) { (formReturn && formReturn.isConnected ? formReturn : input).focus(); }
      formReturn = null;
    }

    function run(a, params, after) {
      state.busy = true;
      var first = Object.keys(params).map(function (k) { return params[k]; }).filter(function (v) {
        return typeof v === "string" || typeof v === "number";
      })[0];
      var said = first === undefined ? "" : String(first);
      message("me", actionLabel(a) + (said ? ": " + (said.length > 60 ? said.slice(0, 59) + "…" : said) : ""));
      var done = typing();
      callAsVisitor("/actions/" + encodeURIComponent(a.name), { params: params }).then(function (res) {
        done();
        state.busy = false;
        if (after && after(res)) { return; }
        if (res.ok) {
          var m = message("bot result-msg", renderResult(a, res.data.result));
          m.setAttribute("data-action", a.name);
        } else {
          errorMessage(res);
        }
        input.focus();
      });
    }

    // -- chat ----------------------------------------------------------------------------------

    function ask(text) {
      state.busy = true;
      sendBtn.disabled = true;
      message("me", text);
      var done = typing();
      var body = { message: text };
      if (state.conversation) { body.conversation_id = state.conversation; }
      callAsVisitor("/chat", body).then(function (res) {
        done();
        state.busy = false;
        sendBtn.disabled = false;
        if (!res.ok) { errorMessage(res); return; }
        var d = res.data;
        if (typeof d.conversation_id === "string" && d.conversation_id) { state.conversation = d.conversation_id; }
        var parts = [];
        String(d.answer || "").split(/\n{2,}/).forEach(function (p) { if (p.trim()) { parts.push(h("p", { text: p })); } });
        var cites = Array.isArray(d.citations) ? d.citations : [];
        if (cites.length) {
          parts.push(h("div", { class: "sources" }, h("h3", { text: "Sources" }), h("ul", null, cites.map(function (c) {
            var label = String(c.document || "") + (c.section ? " — " + c.section : "");
            return h("li", null, c.excerpt ? h("details", null, h("summary", { text: label }), h("blockquote", { text: c.excerpt })) : label);
          }))));
        }
        var sugg = (Array.isArray(d.suggested_actions) ? d.suggested_actions : []).map(function (s) {
          return s && state.catalog[s.name] ? state.catalog[s.name] : null;
        }).filter(Boolean).slice(0, 4);
        if (sugg.length) {
          parts.push(h("div", { class: "chips", role: "group", "aria-label": "Suggested actions" }, sugg.map(function (a) {
            return actionButton(a, "chip");
          })));
        }
        var m = message("bot answer", parts);
        m.setAttribute("data-grounded", d.grounded ? "true" : "false");
      });
    }

    composer.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var text = input.value.trim();
      if (!text || state.busy || input.disabled) { return; }
      input.value = "";
      ask(text.slice(0, 2000));
    });

    // -- states --------------------------------------------------------------------------------

    function ready(cfg) {
      state.status = "ready";
      host.setAttribute("data-state", "ready");
      title.textContent = String(cfg.display_name || cfg.workspace || "Support");
      launcher.setAttribute("aria-label", "Chat with " + title.textContent);
      var chat = !cfg.features || cfg.features.chat !== false;
      input.disabled = !chat;
      sendBtn.disabled = !chat;
      toolsBtn.hidden = actionsFor().length === 0;
      message("bot greeting", String(cfg.greeting || "Hi! How can we help?"));
      renderIdentity();
      if (isOpen() && document.activeElement === host && root.activeElement === closeBtn && chat) { input.focus(); }
    }

    function failed(res) {
      state.status = "error";
      host.setAttribute("data-state", "error");
      host.setAttribute("data-error", res.code || "error");
      who.textContent = "Unavailable";
      var text = res.code === "network" ? "Sorry, the chat isn't available on this page right now." : humanError(res);
      var m = message("err", text, res.requestId);
      m.setAttribute("data-code", res.code);
      launcher.appendChild(h("span", { class: "badge", "aria-hidden": "true" }));
    }

    function mount() {
      (document.body || document.documentElement).appendChild(host);
      if (START_OPEN) { open(); } else if (isOpen()) { (input.disabled ? closeBtn : input).focus(); }
    }

    return { open: open, close: close, ready: ready, failed: failed, renderIdentity: renderIdentity, mount: mount, host: host };
  })();

