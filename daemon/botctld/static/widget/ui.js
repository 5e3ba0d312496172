  // ---------------------------------------------------------------------------------------------
  // The UI.

  var state = { config: null, catalog: {}, status: "loading", busy: false };

  // Chrome strings are (re)applied by relabel(): at start, and once the workspace's language is known.

  var ui = (function () {
    var host = document.createElement("div");
    host.id = "botctl-widget";
    host.setAttribute("data-state", "loading");
    var root = host.attachShadow({ mode: "open" });
    adoptStyles(root);

    var launcher = h("button", { class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "botctl-panel",
      "aria-haspopup": "dialog" }, icon("chat"), icon("close"));
    launcher.firstChild.setAttribute("class", "i-open");
    launcher.lastChild.setAttribute("class", "i-close");
    var title = h("h2", { id: "botctl-title" });
    var who = h("p", { class: "who" });
    var logo = h("img", { class: "logo", alt: "", hidden: true });
    var personBtn = h("button", { class: "icon-btn person", type: "button", hidden: true }, icon("person"));
    var closeBtn = h("button", { class: "icon-btn close", type: "button" }, icon("close"));
    var log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions", tabindex: "0" });
    var tray = h("div", { class: "sheet tray", id: "botctl-tray", role: "region", "aria-labelledby": "botctl-tray-h", hidden: true });
    var sheet = h("div", { class: "sheet form-sheet", role: "region", "aria-labelledby": "botctl-form-h", hidden: true });
    var input = h("input", { id: "botctl-q", type: "text", maxlength: 2000, autocomplete: "off", disabled: true });
    var toolsBtn = h("button", { class: "icon-btn tools", type: "button", "aria-expanded": "false", "aria-controls": "botctl-tray",
      hidden: true }, icon("bolt"));
    var sendBtn = h("button", { class: "icon-btn send", type: "submit", disabled: true }, icon("send"));
    var askLabel = h("label", { for: "botctl-q", class: "sr-only" });
    var foot = h("p", { class: "foot" });
    var composer = h("form", { class: "composer", novalidate: true }, toolsBtn, askLabel, input, sendBtn);
    var panel = h("section", { class: "panel", id: "botctl-panel", role: "dialog", "aria-modal": "false",
      "aria-labelledby": "botctl-title", "aria-describedby": "botctl-who", hidden: true },
    h("header", { class: "head" }, logo, h("div", { class: "titles" }, title, who), personBtn, closeBtn),
    log, tray, sheet, composer, foot);
    who.id = "botctl-who";
    root.appendChild(launcher);
    root.appendChild(panel);
    relabel();

    function relabel() {
      var name = state.config ? String(state.config.display_name || state.config.workspace || t("title")) : t("title");
      launcher.setAttribute("aria-label", state.config ? t("launcher.with", { name: name }) : t("launcher"));
      title.textContent = name;
      if (state.status === "loading") { who.textContent = t("who.connecting"); }
      [[personBtn, "handoff"], [closeBtn, "close"], [toolsBtn, "tools"], [sendBtn, "send"]].forEach(function (b) {
        b[0].setAttribute("aria-label", t(b[1]));
        b[0].setAttribute("title", t(b[1]));
      });
      log.setAttribute("aria-label", t("log"));
      input.setAttribute("placeholder", t("ask.placeholder"));
      askLabel.textContent = t("ask");
      foot.textContent = t("foot");
      host.setAttribute("lang", LOCALE);
    }

    // The site's look from widget-config: its accent (a hex colour) and logo (https, or a path on this site).
    function applyTheme(theme) {
      theme = theme && typeof theme === "object" ? theme : {};
      var css = accentCss(theme.accent);
      if (css) { adoptStyles(root, css); }
      var src = logoUrl(theme.logo);
      if (src) { logo.src = src; logo.hidden = false; }
    }

    function logoUrl(value) {
      if (typeof value !== "string" || !value || value.length > 2048) { return null; }
      try {
        if (value.charAt(0) === "/" && value.charAt(1) !== "/" && value.charAt(1) !== "\\") {
          var local = new URL(value, location.origin);
          return local.origin === location.origin ? local.href : null;
        }
        var u = new URL(value);
        return u.protocol === "https:" && !u.username && !u.password ? u.href : null;
      } catch (e) {
        return null;
      }
    }

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
        if (!sheet.hidden) { if (sheetCancel) { sheetCancel(); } else { closeSheet(); } } else if (!tray.hidden) { hideTray(); toolsBtn.focus(); } else { close(); }
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
      if (ref) { m.appendChild(h("span", { class: "ref", text: t("reference", { id: ref }) })); }
      log.appendChild(m);
      scrollDown();
      return m;
    }

    function signInLink() { return SIGN_IN_URL ? h("a", { href: SIGN_IN_URL, text: t("signIn") }) : null; }

    function errorMessage(res) {
      var m = message("err", humanError(res), res.requestId);
      if ((res.code === "identity_required" || res.code === "invalid_identity") && SIGN_IN_URL) {
        m.insertBefore(h("p", null, signInLink()), m.querySelector(".ref"));
      }
      m.setAttribute("data-code", res.code);
      return m;
    }

    function typing() {
      log.setAttribute("aria-busy", "true");
      var m = message("bot typing", t("thinking"));
      return function () { m.remove(); log.removeAttribute("aria-busy"); };
    }

    // A question in the sheet (the "talk to a person" consent; other parts' confirmations): resolves
    // true when the visitor confirms, false when they cancel (button, Escape, or another sheet opening).
    var sheetCancel = null;

    function confirmSheet(opts) {
      if (sheetCancel) { sheetCancel(); }
      return new Promise(function (resolve) {
        closeSheet(true);
        hideTray();
        var back = opts.from || input;
        var yes = h("button", { type: "submit", class: "btn primary", text: opts.confirm });
        var no = h("button", { type: "button", class: "btn", text: t("cancel") });
        var form = h("form", { novalidate: true, class: "confirm", "data-confirm": opts.id || "confirm" },
          h("h3", { id: "botctl-form-h", text: opts.title }), h("p", { class: "desc", text: opts.text }),
          opts.detail || null, h("div", { class: "row" }, no, yes));
        function settle(answer) {
          if (sheetCancel !== settleNo) { return; }
          sheetCancel = null;
          formReturn = back;
          closeSheet(answer); // confirmed: the caller moves focus on; cancelled: back where the visitor was
          resolve(answer);
        }
        function settleNo() { settle(false); }
        no.addEventListener("click", settleNo);
        form.addEventListener("submit", function (ev) { ev.preventDefault(); settle(true); });
        sheet.replaceChildren(form);
        sheet.hidden = false;
        sheetCancel = settleNo;
        yes.focus();
      });
    }

    // -- identity line and the action tray -----------------------------------------------------

    function renderIdentity() {
      if (state.status === "error") { return; }
      var c = identity.claims || {};
      var name = identity.token ? (typeof c.name === "string" && c.name) || (typeof c.email === "string" && c.email) || t("who.you") : null;
      who.textContent = name ? t("who.signedIn", { name: name }) : t("who.anonymous");
      host.setAttribute("data-identity", name ? "signed-in" : "anonymous");
      if (!name && state.status === "ready") { signedOut(); }
      if (!tray.hidden) { renderTray(); }
      var waiting = identityWaiters;
      identityWaiters = [];
      waiting.forEach(function (resolve) { resolve(); });
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
        locked ? h("small", { class: "lock", text: t("signIn.use") }) : null);
      btn.addEventListener("click", function () { startAction(a, btn); });
      return btn;
    }

    function renderTray() {
      var list = actionsFor();
      list.sort(function (x, y) { return needsSignIn(x) - needsSignIn(y); });
      var ul = h("ul");
      list.forEach(function (a) { ul.appendChild(h("li", null, actionButton(a, "act"))); });
      tray.replaceChildren(
        h("h3", { id: "botctl-tray-h", text: t("tools") }),
        h("p", { class: "desc", text: signedIn() ? t("tray.signedIn") : t("tray.anonymous") }),
        ul);
    }

    function showTray() {
      if (sheetCancel) { sheetCancel(); }
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
        var m = message("bot", [h("p", { text: t("signIn.needed", { action: actionLabel(a) }) }),
          SIGN_IN_URL ? h("p", null, signInLink()) : h("p", { text: t("signIn.then") })]);
        m.setAttribute("data-code", "sign_in_required");
        input.focus();
        return;
      }
      var fields = fieldsOf(a.params);
      if (!fields.length) { run(a, {}, null); return; }
      openSheet(a, fields, from);
    }

    function openSheet(a, fields, from) {
      if (sheetCancel) { sheetCancel(); }
      formReturn = from || toolsBtn;
      var built = fields.map(buildField);
      var formError = h("p", { class: "form-error", role: "alert", hidden: true });
      var submit = h("button", { type: "submit", class: "btn primary", text: actionLabel(a) });
      var cancel = h("button", { type: "button", class: "btn", text: t("cancel") });
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
      var line = actionLabel(a) + (said ? ": " + (said.length > 60 ? said.slice(0, 59) + "…" : said) : "");
      message("me", line);
      keep({ kind: "me", text: line });
      var done = typing();
      callAsVisitor("/actions/" + encodeURIComponent(a.name), { params: params }).then(function (res) {
        done();
        state.busy = false;
        if (after && after(res)) { return; }
        if (res.ok) {
          showResult(keep({ kind: "result", action: a.name, result: res.data.result }));
        } else {
          errorMessage(res);
        }
        input.focus();
      });
    }

    function showResult(entry) {
      var a = state.catalog[entry.action] || { name: entry.action };
      var m = message("bot result-msg", renderResult(a, entry.result));
      m.setAttribute("data-action", entry.action);
      return m;
    }

    // -- chat ----------------------------------------------------------------------------------

    function ask(text) {
      state.busy = true;
      sendBtn.disabled = true;
      message("me", text);
      keep({ kind: "me", text: text });
      var done = typing();
      var body = { message: text };
      if (transcript.conversation) { body.conversation_id = transcript.conversation; }
      callAsVisitor("/chat", body).then(function (res) {
        done();
        state.busy = false;
        sendBtn.disabled = false;
        if (!res.ok) { errorMessage(res); return; }
        var d = res.data;
        if (typeof d.conversation_id === "string" && d.conversation_id) { transcript.conversation = d.conversation_id.slice(0, 64); }
        showAnswer(keep(answerEntry(text, d)));
      });
    }

    // An answer as shown, and as kept: Markdown text, its sources, suggested actions, the vote.
    function showAnswer(entry) {
      var parts = renderMarkdown(entry.text);
      if (entry.citations.length) { parts.push(renderSources(entry.citations)); }
      var sugg = entry.suggested.map(function (n) { return state.catalog[n]; }).filter(Boolean).slice(0, 4);
      var chips = sugg.map(function (a) { return actionButton(a, "chip"); });
      if (!entry.grounded && handoffAvailable()) { chips.push(handoffChip()); }
      if (chips.length) { parts.push(h("div", { class: "chips", role: "group", "aria-label": t("suggested") }, chips)); }
      if (entry.answerId && !(state.config && state.config.features && state.config.features.feedback === false)) {
        parts.push(renderRating(entry));
      }
      var m = message("bot answer", parts);
      m.setAttribute("data-grounded", entry.grounded ? "true" : "false");
      return m;
    }

    function handoffChip() {
      var b = h("button", { type: "button", class: "chip handoff-chip" }, t("handoff"));
      b.addEventListener("click", function () { talkToPerson(b); });
      return b;
    }

    composer.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var text = input.value.trim();
      if (!text || state.busy || input.disabled) { return; }
      input.value = "";
      ask(text.slice(0, 2000));
    });

    personBtn.addEventListener("click", function () { talkToPerson(personBtn); });

    // -- the conversation so far (transcript.js) -------------------------------------------------

    function restore() {
      loadTranscript();
      // Results are shown again only to a signed-in visitor: the site's token may come a moment after
      // the page (its endpoint, or botctl.identify from the page's own script), so wait for it, briefly.
      if (transcript.private && !signedIn()) { signedInWithin(3000).then(showKept); return; }
      showKept();
    }

    var identityWaiters = [];

    // Resolves at the next news of the visitor's identity, or after `ms`.
    function signedInWithin(ms) {
      return new Promise(function (resolve) {
        identityWaiters.push(resolve);
        setTimeout(resolve, ms);
      });
    }

    function showKept() {
      if (transcript.private && !signedIn()) { dropResults(); } // nobody signed in: their results go
      transcript.entries.forEach(function (e) {
        if (e.kind === "me") { message("me", e.text); } else if (e.kind === "note") { message("bot note", e.text); } else if (e.kind === "result") { showResult(e); } else { showAnswer(normalAnswer(e)); }
      });
    }

    // Signed out: the visitor's own results go, on screen and in storage; questions and answers stay.
    function signedOut() {
      if (!transcript.private) { return; }
      dropResults();
      Array.prototype.forEach.call(log.querySelectorAll(".result-msg"), function (m) { m.remove(); });
    }

    // -- states --------------------------------------------------------------------------------

    function ready(cfg) {
      state.status = "ready";
      host.setAttribute("data-state", "ready");
      useWorkspaceLocale(cfg.theme && cfg.theme.locale);
      relabel();
      applyTheme(cfg.theme);
      var chat = !cfg.features || cfg.features.chat !== false;
      input.disabled = !chat;
      sendBtn.disabled = !chat;
      toolsBtn.hidden = actionsFor().length === 0;
      personBtn.hidden = !(cfg.features && cfg.features.handoff);
      // The greeting in the visitor's language unless the operator wrote their own.
      var greeting = typeof cfg.greeting === "string" && cfg.greeting && (LOCALE === "en" || cfg.greeting !== STRINGS.en.greeting)
        ? cfg.greeting : t("greeting");
      message("bot greeting", greeting);
      renderIdentity();
      restore();
      if (isOpen() && document.activeElement === host && root.activeElement === closeBtn && chat) { input.focus(); }
    }

    function failed(res) {
      state.status = "error";
      host.setAttribute("data-state", "error");
      host.setAttribute("data-error", res.code || "error");
      who.textContent = t("who.unavailable");
      var text = res.code === "network" ? t("unavailable") : humanError(res);
      var m = message("err", text, res.requestId);
      m.setAttribute("data-code", res.code);
      launcher.appendChild(h("span", { class: "badge", "aria-hidden": "true" }));
    }

    function mount() {
      (document.body || document.documentElement).appendChild(host);
      if (START_OPEN) { open(); } else if (isOpen()) { (input.disabled ? closeBtn : input).focus(); }
    }

    return {
      open: open, close: close, ready: ready, failed: failed, renderIdentity: renderIdentity, mount: mount, host: host,
      signedOut: signedOut, message: message, errorMessage: errorMessage, typing: typing, confirm: confirmSheet,
      signInLink: signInLink, focusInput: function () { if (!input.disabled) { input.focus(); } }
    };
  })();
