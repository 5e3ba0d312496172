  // ---------------------------------------------------------------------------------------------
  // Words: action labels, field labels, values.

  var VERBS = { get: "Look up", list: "List", upsert: "Update", create: "Create", add: "Add", cancel: "Cancel", book: "Book" };
  var ACRONYMS = { id: "ID", url: "URL", vat: "VAT", iana: "IANA" };

  function words(name) {
    return String(name).replace(/([a-z])([A-Z])/g, "$1 $2").split(/[_\s-]+/).filter(Boolean).map(function (w) {
      return ACRONYMS[w.toLowerCase()] || w.toLowerCase();
    });
  }

  function sentence(list) {
    var s = list.join(" ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  function actionLabel(a) {
    var w = words(String(a.name).split(".").pop());
    if (VERBS[w[0]]) { w[0] = VERBS[w[0]].toLowerCase(); }
    return sentence(w);
  }

  function fieldLabel(key) {
    var w = words(key);
    if (w.length > 1 && w[w.length - 1] === "at") { w.pop(); } // created_at -> Created
    return sentence(w);
  }

  function humanValue(v) {
    return String(v).replace(/_/g, " ").toLowerCase();
  }

  var TITLE_KEYS = ["name", "number", "subject", "title", "summary", "display_name", "nickname", "label", "email"];
  var MONEY_KEYS = ["total", "amount", "amount_due", "amount_paid", "amount_total", "price", "subtotal", "total_price"];
  var DATE_KEY = /(^|_)(created|updated|date|time|start|end|due|closed|cancell?ed|at)($|_)|^(start|end|created|updated)/;
  var HIDE_KEYS = { truncated: 1, object: 1, currency: 1 };

  function isScalar(v) { return v === null || ["string", "number", "boolean"].indexOf(typeof v) >= 0; }
  function isUrl(v) { return typeof v === "string" && /^https?:\/\//i.test(v); }

  function formatDate(v, key) {
    var d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
    if (isNaN(d.getTime())) { return String(v); }
    var dateOnly = /created|updated|closed|cancel|due|period/.test(key) || (typeof v === "string" && v.length <= 10);
    try {
      return dateOnly ? d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" })
        : d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
    } catch (e) {
      return d.toISOString();
    }
  }

  function formatMoney(value, key, currency) {
    var n = typeof value === "number" ? value : parseFloat(value);
    if (!isFinite(n)) { return String(value); }
    // Integer "amount*" fields are minor units (Stripe's convention); decimal strings are major units.
    if (typeof value === "number" && Number.isInteger(value) && key.indexOf("amount") === 0) { n = n / 100; }
    if (typeof currency === "string" && /^[a-z]{3}$/i.test(currency)) {
      try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(n);
      } catch (e) { /* unknown currency code */ }
    }
    return n.toFixed(2) + (currency ? " " + String(currency).toUpperCase() : "");
  }

  function formatValue(key, value, obj) {
    if (value === null || value === undefined || value === "") { return null; }
    if (typeof value === "boolean") { return value ? t("yes") : t("no"); }
    if (MONEY_KEYS.indexOf(key) >= 0 && (typeof value === "number" || /^-?\d+(\.\d+)?$/.test(String(value)))) {
      return formatMoney(value, key, obj && obj.currency);
    }
    if (DATE_KEY.test(key) && ((typeof value === "number" && value > 1e8 && value < 1e11) ||
        (typeof value === "string" && /^\d{4}-\d{2}-\d{2}/.test(value)))) {
      return formatDate(value, key);
    }
    if (/status|priority|state/.test(key) && typeof value === "string") { return humanValue(value); }
    return String(value);
  }

  function titleOf(obj) {
    for (var i = 0; i < TITLE_KEYS.length; i++) {
      var k = TITLE_KEYS[i];
      if (typeof obj[k] === "string" && obj[k]) {
        var short = obj.id !== undefined && String(obj.id).length <= 8 && k !== "name" && k !== "number";
        return (short ? "#" + obj.id + " " : "") + obj[k];
      }
    }
    var nested = Array.isArray(obj.items) ? obj.items.map(function (it) {
      return it && (it.nickname || it.name || it.title);
    }).filter(Boolean) : [];
    if (nested.length) { return nested.join(", "); }
    if (obj.id !== undefined) { return "#" + obj.id; }
    return null;
  }

  // Up to four short facts for a list entry: statuses, money, the main date, priority.
  function factsOf(obj, max) {
    var facts = [];
    var keys = Object.keys(obj);
    function push(k) {
      if (facts.length >= max) { return; }
      var v = formatValue(k, obj[k], obj);
      if (v !== null && isScalar(obj[k])) { facts.push(k === "priority" ? v + " priority" : v); }
    }
    keys.filter(function (k) { return /status$/.test(k) || k === "state"; }).slice(0, 2).forEach(push);
    keys.filter(function (k) { return MONEY_KEYS.indexOf(k) >= 0; }).slice(0, 1).forEach(push);
    keys.filter(function (k) { return /^(start|start_time|date|created|created_at)$/.test(k); }).slice(0, 1).forEach(push);
    if (obj.priority) { push("priority"); }
    return facts;
  }

  function linkOf(obj) {
    var keys = Object.keys(obj).filter(function (k) { return isUrl(obj[k]); });
    if (!keys.length) { return null; }
    var k = keys[0];
    var href = safeUrl(obj[k]);
    if (!href) { return null; }
    return h("a", { href: href, target: "_blank", rel: "noopener noreferrer" }, linkText(k, obj[k]));
  }

  function linkText(key, url) {
    if (/invoice/.test(key)) { return t("link.invoice"); }
    if (/status|track/.test(key) || /track/i.test(url)) { return t("link.track"); }
    if (/receipt/.test(key)) { return t("link.receipt"); }
    return t("link.open");
  }

  function renderEntry(obj) {
    if (!obj || typeof obj !== "object") { return h("li", null, String(obj)); }
    var link = linkOf(obj);
    var facts = factsOf(obj, 4);
    return h("li", null,
      h("span", { class: "t", text: titleOf(obj) || t("item") }),
      facts.length || link ? h("span", { class: "f" }, facts.join(" · "), facts.length && link ? " · " : "", link) : null);
  }

  function renderSublist(key, items) {
    var shown = items.slice(0, 5).map(function (it) {
      if (!it || typeof it !== "object") { return h("li", { text: String(it) }); }
      if (it.body && it.from) { return h("li", { text: (it.from === "you" ? t("you") : fieldLabel(it.from)) + ": " + it.body }); }
      if (it.quantity !== undefined && (it.name || it.title)) { return h("li", { text: it.quantity + " × " + (it.name || it.title) }); }
      var t = titleOf(it) || it.status || it.company || "";
      var extra = factsOf(it, 2).filter(function (f) { return f !== t; });
      var link = linkOf(it);
      return h("li", null, [t, extra.join(" · ")].filter(Boolean).join(" · "), link ? " · " : "", link);
    });
    if (items.length > 5) { shown.push(h("li", { text: t("more.short", { n: items.length - 5 }) })); }
    return [h("span", { class: "f", text: fieldLabel(key) }), h("ul", { class: "sub" }, shown)];
  }

  // Plain-language rendering of an action's result: lists of objects as compact lists, one object as
  // its title, facts and nested lists. Generic: it reads field names, not vendor-specific shapes.
  function renderResult(action, result) {
    var box = h("div", { class: "result" });
    var customer = action && action.customer_specific;
    var verb = String(action ? action.name : "").split(".").pop().split("_")[0];
    var list = null;
    var listKey = "items";
    if (Array.isArray(result)) {
      list = result;
    } else if (result && typeof result === "object") {
      var arrays = Object.keys(result).filter(function (k) { return Array.isArray(result[k]); });
      var scalars = Object.keys(result).filter(function (k) { return !Array.isArray(result[k]) && !HIDE_KEYS[k]; });
      if (arrays.length === 1 && scalars.length === 0) { listKey = arrays[0]; list = result[listKey]; }
    }
    if (list) {
      var noun = words(listKey).join(" ");
      if (!list.length) {
        box.appendChild(h("p", { text: t(customer ? "none.yours" : "none", { noun: noun }) }));
        return box;
      }
      box.appendChild(h("h3", { text: t(customer ? "list.yours" : "list", { noun: noun, n: list.length }) }));
      var ul = h("ul");
      list.slice(0, 10).forEach(function (it) { ul.appendChild(renderEntry(it)); });
      box.appendChild(ul);
      if (list.length > 10) { box.appendChild(h("p", { class: "note", text: t("more", { n: list.length - 10 }) })); }
      if (result && result.truncated) { box.appendChild(h("p", { class: "note", text: t("recent") })); }
      return box;
    }
    if (!result || typeof result !== "object") {
      box.appendChild(h("p", { text: result === null || result === undefined ? t("done") : String(result) }));
      return box;
    }
    var done = { create: 1, add: 1, book: 1, cancel: 1, upsert: 1, update: 1 }[verb];
    var title = titleOf(result);
    box.appendChild(h("p", null, done ? t("done.prefix") : "", h("span", { class: "t", text: title || t("details") })));
    var dl = h("dl");
    var rows = 0;
    Object.keys(result).forEach(function (k) {
      var v = result[k];
      if (HIDE_KEYS[k] || rows >= 8 || !isScalar(v) || v === null || v === "" || TITLE_KEYS.indexOf(k) >= 0 && title && title.indexOf(String(v)) >= 0) { return; }
      if (k === "id" && title && title.indexOf("#" + v) === 0) { return; }
      if (isUrl(v)) {
        var href = safeUrl(v);
        if (href) {
          dl.appendChild(h("dt", { text: t("link") }));
          dl.appendChild(h("dd", null, h("a", { href: href, target: "_blank", rel: "noopener noreferrer" }, linkText(k, v))));
          rows++;
        }
        return;
      }
      var text = formatValue(k, v, result);
      if (text === null) { return; }
      dl.appendChild(h("dt", { text: fieldLabel(k) }));
      dl.appendChild(h("dd", { text: text }));
      rows++;
    });
    if (rows) { box.appendChild(dl); }
    Object.keys(result).forEach(function (k) {
      if (Array.isArray(result[k]) && result[k].length) { add(box, renderSublist(k, result[k])); }
    });
    return box;
  }

