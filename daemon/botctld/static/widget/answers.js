  // ---------------------------------------------------------------------------------------------
  // Answers: what is kept of one (transcript.js), its sources, and the visitor's thumbs up / down.

  function answerEntry(question, d) {
    return normalAnswer({
      kind: "answer", question: question, text: String(d.answer || ""), grounded: !!d.grounded, citations: d.citations,
      suggested: (Array.isArray(d.suggested_actions) ? d.suggested_actions : []).map(function (s) { return s && s.name; }),
      answerId: d.answer_id
    });
  }

  // An answer entry made safe to render, whether it just came from the edge or from storage.
  function normalAnswer(e) {
    e.question = String(e.question || "").slice(0, 2000);
    e.text = String(e.text || "");
    e.grounded = e.grounded === true;
    e.citations = (Array.isArray(e.citations) ? e.citations : []).filter(function (c) {
      return c && typeof c === "object";
    }).slice(0, 8).map(function (c) {
      return { title: String(c.title || c.document || ""), section: typeof c.section === "string" ? c.section : "",
        url: typeof c.url === "string" ? c.url : null };
    });
    e.suggested = (Array.isArray(e.suggested) ? e.suggested : []).filter(function (n) { return typeof n === "string"; });
    e.answerId = typeof e.answerId === "string" && e.answerId.length <= 80 ? e.answerId : null;
    e.vote = e.vote === "up" || e.vote === "down" ? e.vote : null;
    return e;
  }

  // Sources by the article's title, linked to its page on the site's help center when the operator
  // gave one (an http(s) URL only), and the section the answer came from.
  function renderSources(cites) {
    var seen = {};
    var items = [];
    cites.forEach(function (c) {
      var key = c.title + "\n" + c.section;
      if (seen[key]) { return; }
      seen[key] = true;
      var url = c.url ? httpUrl(c.url) : null;
      var name = url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: c.title }) : h("span", { text: c.title });
      items.push(h("li", null, name, c.section && c.section !== c.title ? " — " + c.section : ""));
    });
    return h("div", { class: "sources" }, h("h3", { text: t("sources") }), h("ul", null, items));
  }

  // Thumbs up / down: sent with the answer's id, the question and the answer as shown (the daemon
  // records a vote only about an answer it gave); a second vote replaces the first.
  function renderRating(entry) {
    var label = h("span", { class: "lbl", text: t("feedback") });
    var status = h("span", { class: "thanks", role: "status" });
    var row = h("div", { class: "rate", role: "group", "aria-label": t("feedback") }, label);
    var buttons = {};
    ["up", "down"].forEach(function (v) {
      var b = h("button", { type: "button", class: "vote", "data-vote": v, "aria-label": t("feedback." + v),
        title: t("feedback." + v), "aria-pressed": entry.vote === v ? "true" : "false" }, icon(v === "up" ? "thumbUp" : "thumbDown"));
      b.addEventListener("click", function () { vote(entry, v, buttons, status); });
      buttons[v] = b;
      row.appendChild(b);
    });
    row.appendChild(status);
    if (entry.vote) { status.textContent = t("feedback.thanks"); }
    return row;
  }

  function vote(entry, v, buttons, status) {
    if (entry.vote === v || buttons.up.disabled) { return; }
    buttons.up.disabled = buttons.down.disabled = true;
    callAsVisitor("/feedback", { answer_id: entry.answerId, vote: v, question: entry.question, answer: entry.text })
      .then(function (res) {
        buttons.up.disabled = buttons.down.disabled = false;
        if (!res.ok) { status.textContent = humanError(res); return; }
        entry.vote = v;
        saveTranscript();
        buttons.up.setAttribute("aria-pressed", v === "up" ? "true" : "false");
        buttons.down.setAttribute("aria-pressed", v === "down" ? "true" : "false");
        status.textContent = t("feedback.thanks");
      });
  }
