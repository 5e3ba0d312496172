  // ---------------------------------------------------------------------------------------------
  // "Talk to a person". With a help desk connected (widget-config's handoff.action, e.g.
  // zendesk.create_ticket), and once the visitor consents, the conversation so far becomes a ticket:
  // run like any action (the visitor's identity, the daemon's checks, an audit record). Without one,
  // the operator's words on how to reach support (`botctl widget set --support-contact`).

  function handoffConfig() {
    var c = state.config && state.config.handoff;
    return c && typeof c === "object" ? c : {};
  }

  function handoffAvailable() {
    return !!(state.config && state.config.features && state.config.features.handoff);
  }

  function contactNote() {
    var c = handoffConfig().contact;
    return typeof c === "string" && c.trim() ? t("handoff.contact", { contact: c.trim().slice(0, 500) }) : t("handoff.none");
  }

  function talkToPerson(from) {
    if (state.busy) { return; }
    var name = handoffConfig().action;
    var a = typeof name === "string" ? state.catalog[name] : null;
    var m;
    if (!a) {
      m = ui.message("bot note", contactNote());
      m.setAttribute("data-code", "handoff_contact");
      return;
    }
    if (a.customer_specific && !signedIn()) {
      m = ui.message("bot note", [h("p", { text: t("handoff.signIn") }), SIGN_IN_URL ? h("p", null, ui.signInLink()) : null,
        handoffConfig().contact ? h("p", { text: contactNote() }) : null]);
      m.setAttribute("data-code", "handoff_sign_in");
      return;
    }
    var ticket = ticketFromTranscript();
    var preview = h("details", null, h("summary", { text: t("handoff.preview") }),
      h("p", { class: "preview", text: ticket.subject + "\n\n" + ticket.description }));
    ui.confirm({ id: "handoff", title: t("handoff"), text: t("handoff.consent"), confirm: t("handoff.send"), from: from,
      detail: preview }).then(function (yes) {
      if (!yes) { return; }
      state.busy = true;
      var done = ui.typing();
      callAsVisitor("/actions/" + encodeURIComponent(a.name), { params: ticket }).then(function (res) {
        done();
        state.busy = false;
        if (!res.ok) { ui.errorMessage(res); return; }
        var r = res.data.result || {};
        var ref = r.id !== undefined && r.id !== null ? "#" + String(r.id).slice(0, 24) : "";
        var text = t("handoff.sent", { ref: ref }).replace(/ {2,}/g, " ");
        ui.message("bot note", text).setAttribute("data-code", "handoff_sent");
        keep({ kind: "note", text: text });
        ui.focusInput();
      });
    });
  }

  // The ticket: the first question as its subject, the conversation (newest kept if long) as its body.
  function ticketFromTranscript() {
    var lines = [];
    var first = null;
    transcript.entries.forEach(function (e) {
      if (e.kind === "me") {
        lines.push(t("handoff.you") + ": " + e.text);
        first = first || e.text;
      } else if (e.kind === "result") {
        lines.push(t("handoff.bot") + ": [" + actionLabel({ name: e.action }) + "]");
      } else {
        lines.push(t("handoff.bot") + ": " + e.text);
      }
    });
    var intro = t("handoff.intro", { site: location.host });
    var body = lines.join("\n\n") || "—";
    var max = 9500 - intro.length;
    if (body.length > max) { body = "…" + body.slice(body.length - max); }
    var q = first || t("handoff");
    return { subject: t("handoff.subject", { question: q.length > 80 ? q.slice(0, 79) + "…" : q }).slice(0, 200),
      description: intro + "\n\n" + body };
  }
