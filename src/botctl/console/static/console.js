/* botctl console: the chain's status, live timeline rows, copy buttons. Text goes in with textContent
   only (record fields are attacker-influenced); no HTML is ever assigned. */
"use strict";
(function () {
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function getJSON(url) {
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); });
  }

  /* The chain's verdict, on the timeline. */
  var chain = document.getElementById("chain");
  function showChain() {
    getJSON(chain.dataset.src).then(function (v) {
      chain.textContent = "";
      chain.className = "chain chain-" + (v.state === "intact" ? "ok" : v.state === "broken" ? "broken" : "unknown");
      if (v.state === "intact") {
        chain.append("Chain intact: " + v.records + " records, head " + v.head_seq + ". ");
      } else if (v.state === "broken") {
        chain.append("Chain BROKEN");
        if (v.first_bad_seq !== null && v.first_bad_seq !== undefined) {
          chain.append(" at ");
          var a = el("a", "record " + Number(v.first_bad_seq));
          a.href = "/records/" + Number(v.first_bad_seq);
          chain.append(a);
        }
        chain.append(": " + v.problem + ". ");
        var bad = document.querySelector('#timeline a[href="/records/' + Number(v.first_bad_seq) + '"]');
        if (bad) {
          var tr = bad.closest("tr");
          tr.classList.add("chain-bad");
          tr.title = "The chain breaks at this record";
        }
      } else {
        chain.append("Cannot check the chain here: " + v.problem + ". ");
      }
      var d = el("a", "details");
      d.href = "/verify";
      chain.append("(", d, ")");
    }).catch(function () { chain.textContent = "Could not get the chain's status."; });
  }
  if (chain) { showChain(); setInterval(function () { if (!document.hidden) showChain(); }, 15000); }

  /* Live rows on the timeline: poll for records after the newest seen, with the page's filters. */
  var table = document.getElementById("timeline");
  var toggle = document.getElementById("live-toggle");
  var status = document.getElementById("live-status");
  var CELLS = ["time", "workspace", "actor", "event", "action", "outcome"];
  /* The reason, and after it a late resolution's other record as a link (as `botctl audit` shows it). */
  function reasonCell(r) {
    var td = el("td", r.reason || "");
    var mark = null;
    if (r.late) {
      mark = el("a", "(late: " + r.late.outcome + " #" + Number(r.late.seq) + ")");
      mark.href = "/records/" + Number(r.late.seq);
      mark.title = "Its real outcome, recorded late";
    } else if (r.resolves) {
      mark = el("a", "(resolves #" + Number(r.resolves.seq) + ", was " + r.resolves.outcome + ")");
      mark.href = "/records/" + Number(r.resolves.seq);
      mark.title = "The record it resolves";
    }
    if (mark) td.append(r.reason ? " " : "", mark);
    return td;
  }
  function rowFor(r) {
    var tr = el("tr", null, "outcome-" + r.outcome + " new");
    var td = el("td");
    var a = el("a", r.seq);
    a.href = "/records/" + Number(r.seq);
    a.setAttribute("aria-label", "Record " + Number(r.seq));
    td.append(a);
    tr.append(td);
    CELLS.forEach(function (k) { tr.append(el("td", r[k])); });
    tr.append(reasonCell(r));
    var rid = el("td");
    if (r.request_id_raw) {
      var params = new URLSearchParams(table.dataset.query);
      params.set("request_id", r.request_id_raw);
      var ra = el("a", r.request_id);
      ra.href = "/?" + params.toString();
      ra.title = "Only this request";
      rid.append(ra);
    }
    tr.append(rid);
    return tr;
  }
  if (table && toggle) {
    var live = true, after = Number(table.dataset.after), limit = Number(table.dataset.limit) || 100, busy = false;
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      live = !live;
      toggle.setAttribute("aria-pressed", String(live));
      toggle.textContent = "Live updates: " + (live ? "on" : "off");
    });
    var poll = function () {
      if (!live || busy || document.hidden) return;
      busy = true;
      var params = new URLSearchParams(table.dataset.query);
      params.set("after", String(after));
      getJSON("/api/records?" + params.toString()).then(function (res) {
        var body = table.tBodies[0];
        res.rows.forEach(function (r) { body.insertBefore(rowFor(r), body.firstChild); });
        while (body.rows.length > limit) body.deleteRow(body.rows.length - 1);
        after = res.next;
        if (res.rows.length) {
          status.textContent = res.rows.length + " new record" + (res.rows.length === 1 ? "" : "s") + " at " +
            new Date().toISOString().slice(11, 19) + " UTC";
          var empty = document.querySelector("p.empty");
          if (empty) empty.remove();
        }
      }).catch(function () { status.textContent = "Live updates paused: the console did not answer."; })
        .finally(function () { busy = false; });
    };
    setInterval(poll, 2000);
  }

  /* Copy buttons next to reconnect commands. */
  document.querySelectorAll("button.copy").forEach(function (b) {
    if (!navigator.clipboard) return;
    b.hidden = false;
    b.addEventListener("click", function () {
      var code = b.parentElement.querySelector("code");
      navigator.clipboard.writeText(code.textContent).then(function () { b.textContent = "Copied"; },
                                                          function () { b.textContent = "Copy failed: select the text"; });
    });
  });
})();
