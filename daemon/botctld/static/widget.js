/*! botctl widget: the embeddable support chat of a self-hosted botctl daemon.

  One tag on any page (the daemon's edge serves this file):

    <script src="https://BOT_HOST/widget.js" data-workspace="acme" async></script>

  Attributes
    data-workspace           the workspace name (required)
    data-identity-endpoint   a same-origin URL of the site's own backend answering {"token": "<identity token>"}
                             for its signed-in visitor ({"token": null} when nobody is); fetched with the
                             visitor's cookies, again when the token is about to expire
    data-sign-in-url         where "Sign in" links point (the site's sign-in page)
    data-open                "true" to start with the panel open

  JavaScript (calls made before this script loads are queued):

    window.botctl = window.botctl || {q: []};
    botctl.q.push(["identify", token]);    // or, once loaded: botctl.identify(token)
    botctl.identify(token)                 // a signed identity token (HS256/RS256/ES256/EdDSA JWT, aud = workspace)
    botctl.identify(() => fetchToken())    // a function returning a token (or a promise of one), re-asked on expiry
    botctl.identify()                      // ask data-identity-endpoint again (after an in-page sign-in)
    botctl.logout()                        // forget the token (in memory only; never stored)
    botctl.open() / botctl.close()

  Theming: the site's own stylesheet may set `#botctl-widget { --botctl-accent: #1f5f4a; }`.
  State, for the site's own scripts and styles: #botctl-widget[data-state=loading|ready|error],
  [data-identity=anonymous|signed-in], [data-open].

  Security: no third-party requests (only this script's origin, plus the same-origin identity endpoint),
  no eval, no innerHTML, no inline styles or handlers: styles are a constructed stylesheet adopted by a
  Shadow DOM, so the widget runs under a strict CSP (style-src without 'unsafe-inline', Trusted Types).
  Everything coming from the daemon, the vendors or the visitor is rendered as text.
*/
(function () {
  "use strict";

  var VERSION = "1.0.0";
  var existing = window.botctl;
  if (existing && existing.__botctl) { return; } // loaded twice: the first instance stays

  var script = document.currentScript ||
    document.querySelector('script[data-workspace][src$="/widget.js"], script[data-workspace][src*="/widget.js?"]');
  if (!script || !script.src) { return; }

  var EDGE = new URL(script.src, location.href).origin;
  var WORKSPACE = (script.getAttribute("data-workspace") || "").trim();
  var ENDPOINT = sameOrigin(script.getAttribute("data-identity-endpoint"), "data-identity-endpoint");
  var SIGN_IN_URL = safeUrl(script.getAttribute("data-sign-in-url"));
  var START_OPEN = script.getAttribute("data-open") === "true";
  var TIMEOUT_MS = 30000;
  var SVGNS = "http://www.w3.org/2000/svg";

  function sameOrigin(value, what) {
    if (!value) { return null; }
    try {
      var u = new URL(value, location.href);
      if (u.origin === location.origin) { return u.href; }
    } catch (e) { /* fall through */ }
    console.warn("botctl: " + what + " must be on this site's own origin; ignored.");
    return null;
  }

  function safeUrl(value, base) {
    if (!value) { return null; }
    try {
      var u = new URL(value, base || location.href);
      return (u.protocol === "https:" || u.protocol === "http:") ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Styles: one constructed stylesheet adopted by the shadow root (CSP-exempt, fully isolated).

  var CSS = [
    ":host{all:initial;--accent:var(--botctl-accent,#1d4ed8);--accent-ink:var(--botctl-accent-ink,#fff);",
    "--ink:#1f2430;--muted:#5b6270;--line:#e3e6ec;--bg:#fff;--soft:#f4f6f9;--err:#b42318;--err-bg:#fef3f2;",
    "font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:var(--ink)}",
    "*,*::before,*::after{box-sizing:border-box}",
    "[hidden]{display:none!important}",
    "button,input,select,textarea{font:inherit;color:inherit}",
    ".sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0}",
    ":focus-visible{outline:3px solid var(--accent);outline-offset:2px}",
    "svg{width:24px;height:24px;fill:currentColor;flex:none}",

    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:60px;height:60px;border-radius:50%;",
    "border:0;background:var(--accent);color:var(--accent-ink);display:flex;align-items:center;justify-content:center;",
    "cursor:pointer;box-shadow:0 6px 20px rgba(16,24,40,.28)}",
    ".launcher:hover{filter:brightness(1.08)}",
    ".launcher:focus-visible{outline-color:var(--ink);outline-offset:3px}",
    ".launcher[aria-expanded=true] .i-open,.launcher[aria-expanded=false] .i-close{display:none}",
    ".launcher .badge{position:absolute;top:2px;right:2px;width:14px;height:14px;border-radius:50%;background:#f79009;border:2px solid #fff}",

    ".panel{position:fixed;right:20px;bottom:92px;z-index:2147483000;width:390px;height:min(640px,calc(100vh - 120px));",
    "display:flex;flex-direction:column;background:var(--bg);border:1px solid var(--line);border-radius:16px;",
    "box-shadow:0 16px 48px rgba(16,24,40,.22);overflow:hidden}",
    ".head{display:flex;align-items:center;gap:10px;padding:12px 12px 12px 16px;background:var(--accent);color:var(--accent-ink)}",
    ".head .titles{flex:1;min-width:0}",
    ".head h2{margin:0;font-size:16px;font-weight:650;line-height:1.25;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".head .who{margin:2px 0 0;font-size:12.5px;opacity:.9;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".icon-btn{border:0;background:transparent;color:inherit;width:40px;height:40px;border-radius:10px;display:flex;",
    "align-items:center;justify-content:center;cursor:pointer}",
    ".icon-btn:hover{background:rgba(255,255,255,.16)}",
    ".head .icon-btn:focus-visible{outline-color:var(--accent-ink)}",

    ".log{flex:1;overflow-y:auto;padding:14px 14px 6px;display:flex;flex-direction:column;gap:10px;background:var(--soft);overscroll-behavior:contain}",
    ".msg{max-width:88%;padding:9px 12px;border-radius:14px;background:var(--bg);border:1px solid var(--line);overflow-wrap:anywhere}",
    ".msg p{margin:0}.msg p+p{margin-top:8px}",
    ".msg.me{align-self:flex-end;background:var(--accent);color:var(--accent-ink);border-color:transparent;border-bottom-right-radius:4px}",
    ".msg.bot{align-self:flex-start;border-bottom-left-radius:4px}",
    ".msg.err{align-self:flex-start;background:var(--err-bg);border-color:#fecdca;color:var(--err)}",
    ".msg.typing{color:var(--muted);font-style:italic}",
    ".ref{display:block;margin-top:4px;font-size:11.5px;color:var(--muted)}",
    ".sources{margin-top:8px;padding-top:8px;border-top:1px solid var(--line);font-size:13px}",
    ".sources h3,.result h3{margin:0 0 4px;font-size:12px;font-weight:650;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}",
    ".sources ul,.result ul{margin:0;padding:0;list-style:none}",
    ".sources li+li{margin-top:2px}",
    ".sources summary{cursor:pointer;color:var(--ink)}",
    ".sources blockquote{margin:4px 0 6px;padding-left:8px;border-left:3px solid var(--line);color:var(--muted)}",
    ".chips{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}",
    ".chip{border:1px solid var(--accent);color:var(--accent);background:var(--bg);border-radius:999px;padding:5px 11px;",
    "cursor:pointer;font-size:13.5px;text-align:left}",
    ".chip:hover{background:var(--soft)}",
    ".chip.locked{border-style:dashed;color:var(--muted);border-color:#b8bec9}",
    ".chip small{display:block;font-size:11.5px;color:var(--muted)}",
    ".result{font-size:14px;min-width:220px}",
    ".result li{padding:7px 0;border-top:1px solid var(--line)}",
    ".result li:first-child{border-top:0;padding-top:2px}",
    ".result .t{font-weight:600}",
    ".result .f{display:block;color:var(--muted);font-size:13px}",
    ".result .sub{margin:4px 0 0 10px;font-size:13px;color:var(--muted)}",
    ".result .sub li{padding:1px 0;border:0}",
    ".result dl{margin:6px 0 0;display:grid;grid-template-columns:auto 1fr;gap:2px 10px;font-size:13px}",
    ".result dt{color:var(--muted)}.result dd{margin:0}",
    ".note{font-size:12.5px;color:var(--muted);margin-top:6px}",
    "a{color:var(--accent)}.msg.me a{color:inherit}",

    ".sheet{border-top:1px solid var(--line);background:var(--bg);padding:12px 14px 0;max-height:75%;overflow-y:auto;flex:0 1 auto}",
    ".tray{padding-bottom:12px}",
    ".log{min-height:96px}",
    ".sheet h3{margin:0 0 2px;font-size:15px}",
    ".sheet .desc{margin:0 0 10px;font-size:13px;color:var(--muted)}",
    ".tray ul{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:6px}",
    ".act{width:100%;height:100%;text-align:left;border:1px solid var(--line);background:var(--bg);border-radius:10px;padding:6px 9px;cursor:pointer;font-size:14px;line-height:1.3}",
    ".act:hover{border-color:var(--accent)}",
    ".act small{display:block;font-size:12px;color:var(--muted)}",
    ".act small.lock{color:var(--err)}",
    ".field{margin-bottom:10px}",
    ".field label{display:block;font-size:13px;font-weight:600;margin-bottom:3px}",
    ".field .req{color:var(--err);font-weight:400}",
    ".field .hint{display:block;font-size:12px;color:var(--muted);margin-bottom:3px;font-weight:400}",
    ".field input[type=text],.field input[type=number],.field input[type=date],.field input[type=datetime-local],",
    ".field select,.field textarea{width:100%;padding:7px 9px;border:1px solid #c4cad4;border-radius:8px;background:var(--bg)}",
    ".field textarea{min-height:72px;resize:vertical}",
    ".field.check label{display:flex;gap:8px;align-items:center;font-weight:500}",
    ".field [aria-invalid=true]{border-color:var(--err)}",
    ".field .error,.form-error{color:var(--err);font-size:12.5px;margin:3px 0 0}",
    ".row{display:flex;gap:8px;justify-content:flex-end;position:sticky;bottom:0;padding:8px 0 12px;background:var(--bg)}",
    ".btn{border:1px solid var(--line);background:var(--bg);border-radius:9px;padding:7px 14px;cursor:pointer}",
    ".btn.primary{background:var(--accent);border-color:var(--accent);color:var(--accent-ink);font-weight:600}",
    ".btn[disabled]{opacity:.6;cursor:progress}",

    ".composer{display:flex;gap:6px;align-items:center;padding:10px;border-top:1px solid var(--line);background:var(--bg)}",
    ".composer input{flex:1;min-width:0;padding:9px 12px;border:1px solid #c4cad4;border-radius:999px;background:var(--bg)}",
    ".composer .icon-btn{color:var(--accent)}",
    ".composer .icon-btn:hover{background:var(--soft)}",
    ".composer .icon-btn[aria-expanded=true]{background:var(--soft)}",
    ".composer [disabled]{opacity:.5;cursor:not-allowed}",
    ".foot{margin:0;padding:0 12px 8px;font-size:11px;color:var(--muted);text-align:center;background:var(--bg)}",

    "@media (max-width:480px){",
    ".panel{inset:0;right:0;bottom:0;width:100%;height:100%;height:100dvh;border-radius:0;border:0}",
    ".launcher[aria-expanded=true]{display:none}",
    ".msg{max-width:94%}",
    "}",
    "@media (prefers-reduced-motion:no-preference){.panel{animation:botctl-in .16s ease-out}}",
    "@keyframes botctl-in{from{opacity:0;transform:translateY(8px)}to{opacity:1;transform:none}}"
  ].join("\n");

  function adoptStyles(root) {
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      // Browsers without constructable stylesheets: a <style> in the shadow root (needs style-src to allow it).
      var style = document.createElement("style");
      style.textContent = CSS;
      root.appendChild(style);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // DOM helpers: text only, never HTML.

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) { return; }
        if (k === "class") { el.className = v; } else if (k === "text") { el.textContent = String(v); } else if (k.slice(0, 2) === "on") {
          el.addEventListener(k.slice(2), v);
        } else { el.setAttribute(k, v === true ? "" : String(v)); }
      });
    }
    for (var i = 2; i < arguments.length; i++) { add(el, arguments[i]); }
    return el;
  }

  function add(el, child) {
    if (child === null || child === undefined || child === false) { return; }
    if (Array.isArray(child)) { child.forEach(function (c) { add(el, c); }); return; }
    el.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }

  var ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8.5L4 21.5V18a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z",
    close: "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z",
    send: "M3 20.5 21.5 12 3 3.5v6.6l12 1.9-12 1.9z",
    bolt: "M13 2 4 14h6.5L9.5 22 20 9.5h-6.6z"
  };

  function icon(name) {
    var svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(SVGNS, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  // ---------------------------------------------------------------------------------------------
  // Identity: the token lives in this closure only (never in storage), as the site handed it over.

  var identity = { token: null, claims: null, fetcher: null, loggedOut: false, pending: null, fetchedAt: 0 };

  function decodeClaims(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) { part += "="; }
      var bytes = Uint8Array.from(atob(part), function (c) { return c.charCodeAt(0); });
      var claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims === "object" ? claims : {};
    } catch (e) {
      return {}; // not ours to verify: the daemon does, and refuses a bad token
    }
  }

  var JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

  function setToken(token) {
    var t = typeof token === "string" && token.trim() ? token.trim() : null;
    if (t !== null && !JWS.test(t)) {
      console.warn("botctl: that is not a signed identity token (a compact JWT); ignored.");
      t = null;
    }
    var changed = t !== identity.token;
    identity.token = t;
    identity.claims = t ? decodeClaims(t) : null;
    if (changed) { ui.renderIdentity(); }
  }

  function refreshable() {
    return !identity.loggedOut && (identity.fetcher !== null || ENDPOINT !== null);
  }

  function fetchFromEndpoint() {
    var ctl = typeof AbortController === "function" ? new AbortController() : null;
    var timer = ctl ? setTimeout(function () { ctl.abort(); }, 10000) : null;
    return fetch(ENDPOINT, { credentials: "include", cache: "no-store", headers: { Accept: "application/json" },
      signal: ctl ? ctl.signal : undefined })
      .then(function (r) {
        clearTimeout(timer);
        if (!r.ok) { return null; }
        var ctype = r.headers.get("content-type") || "";
        if (ctype.indexOf("json") >= 0) {
          return r.json().then(function (b) { return b && typeof b.token === "string" ? b.token : null; });
        }
        return r.text();
      });
  }

  function refreshIdentity() {
    if (identity.pending) { return identity.pending; }
    var source = identity.fetcher || (ENDPOINT && !identity.loggedOut ? fetchFromEndpoint : null);
    if (!source) { return Promise.resolve(identity.token); }
    identity.pending = Promise.resolve()
      .then(function () { return source(); })
      .then(function (t) { setToken(t); }, function () { setToken(null); })
      .then(function () {
        identity.pending = null;
        identity.fetchedAt = Date.now();
        return identity.token;
      });
    return identity.pending;
  }

  function expiresSoon() {
    var exp = identity.claims && identity.claims.exp;
    return typeof exp === "number" && exp * 1000 - Date.now() < 20000;
  }

  function currentToken() {
    var wait = identity.pending || Promise.resolve();
    return wait.then(function () {
      if (identity.token && expiresSoon() && refreshable()) { return refreshIdentity(); }
      return identity.token;
    });
  }

  function signedIn() { return identity.token !== null; }

  // ---------------------------------------------------------------------------------------------
  // The daemon's API (the edge: this script's own origin).

  function request(method, path, body, token) {
    var headers = {};
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    if (token) { headers.Authorization = "Bearer " + token; }
    var ctl = typeof AbortController === "function" ? new AbortController() : null;
    var timer = ctl ? setTimeout(function () { ctl.abort(); }, TIMEOUT_MS) : null;
    var url = EDGE + "/v1/workspaces/" + encodeURIComponent(WORKSPACE) + path;
    return fetch(url, {
      method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", mode: "cors", cache: "no-store", signal: ctl ? ctl.signal : undefined
    }).then(function (r) {
      clearTimeout(timer);
      return r.json().catch(function () { return null; }).then(function (data) {
        var rid = (data && typeof data.request_id === "string" && data.request_id) || r.headers.get("X-Request-Id") || "";
        if (r.ok && data && typeof data === "object") { return { ok: true, status: r.status, data: data, requestId: rid }; }
        var e = (data && data.error) || {};
        return {
          ok: false, status: r.status, code: typeof e.code === "string" ? e.code : "http_" + r.status,
          message: typeof e.message === "string" ? e.message : "", requestId: rid,
          retryAfter: parseInt(r.headers.get("Retry-After") || "", 10)
        };
      });
    }, function (e) {
      clearTimeout(timer);
      return { ok: false, status: 0, code: e && e.name === "AbortError" ? "timeout" : "network", message: "" };
    });
  }

  // POST with the visitor's identity; a refused token is refreshed once (when the site can give a new
  // one), else forgotten: never silently downgraded to anonymous for the request that carried it.
  function callAsVisitor(path, body) {
    return currentToken().then(function (token) {
      return request("POST", path, body, token).then(function (res) {
        if (res.ok || res.code !== "invalid_identity" || !token) { return res; }
        if (!refreshable()) { setToken(null); return res; }
        return refreshIdentity().then(function (fresh) {
          if (!fresh || fresh === token) { setToken(null); return res; }
          return request("POST", path, body, fresh).then(function (again) {
            if (again.code === "invalid_identity") { setToken(null); }
            return again;
          });
        });
      });
    });
  }

  /* error-codes: generated by `python -m botctld.error_codes --widget`; do not edit */
  var CODE_MESSAGES = {
    identity_required: "Please sign in to do this.",
    invalid_identity: "Your session expired; please sign in again.",
    forbidden: "That doesn't belong to your account.",
    plan_required: "This isn't available on this site's plan.",
    origin_not_allowed: "This chat isn't enabled for this website.",
    unknown_workspace: "This chat isn't set up correctly on this website.",
    unknown_action: "This isn't available right now.",
    not_found: "We couldn't find that. Check the number and try again.",
    invalid_params: "Something in that request isn't right; please check it.",
    invalid_request: "Something went wrong; please try again.",
    method_not_allowed: "Something went wrong; please try again.",
    payload_too_large: "That's too long; please shorten it.",
    uri_too_long: "Something went wrong; please try again.",
    unsupported_media_type: "Something went wrong; please try again.",
    headers_too_large: "Something went wrong; please try again.",
    not_connected: "This isn't available right now.",
    needs_reauth: "This isn't available right now.",
    missing_scope: "This isn't available right now.",
    rate_limited: "Too many requests; please wait a moment.",
    upstream_error: "The service didn't answer; try again.",
    outcome_unknown: "We couldn't confirm this went through. Please check before trying again.",
    upstream_timeout: "The service didn't answer; try again.",
    provider_unavailable: "The assistant is starting up or unavailable; try again in a moment.",
    audit_unavailable: "This isn't available right now; please try again later.",
    internal_error: "Something went wrong on our side; please try again."
  };
  /* end of error-codes */
  var ERRORS = {
    // The browser's own failures, which no server code names.
    timeout: "The assistant took too long to answer; try again.",
    network: "Can't reach the assistant right now; check your connection and try again."
  };
  Object.keys(CODE_MESSAGES).forEach(function (code) { ERRORS[code] = CODE_MESSAGES[code]; });

  function humanError(res) {
    if (res.code === "rate_limited") {
      var n = res.retryAfter > 0 ? res.retryAfter : 5;
      return "Too many requests; try again in " + n + " s.";
    }
    if (res.code === "invalid_params" || res.code === "invalid_request") {
      return res.message || "Some of the details aren't valid.";
    }
    return ERRORS[res.code] || "Something went wrong; please try again.";
  }

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
    if (typeof value === "boolean") { return value ? "yes" : "no"; }
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
    if (/invoice/.test(key)) { return "View invoice"; }
    if (/status|track/.test(key) || /track/i.test(url)) { return "Track"; }
    if (/receipt/.test(key)) { return "Receipt"; }
    return "Open";
  }

  function renderEntry(obj) {
    if (!obj || typeof obj !== "object") { return h("li", null, String(obj)); }
    var link = linkOf(obj);
    var facts = factsOf(obj, 4);
    return h("li", null,
      h("span", { class: "t", text: titleOf(obj) || "Item" }),
      facts.length || link ? h("span", { class: "f" }, facts.join(" · "), facts.length && link ? " · " : "", link) : null);
  }

  function renderSublist(key, items) {
    var shown = items.slice(0, 5).map(function (it) {
      if (!it || typeof it !== "object") { return h("li", { text: String(it) }); }
      if (it.body && it.from) { return h("li", { text: (it.from === "you" ? "You" : fieldLabel(it.from)) + ": " + it.body }); }
      if (it.quantity !== undefined && (it.name || it.title)) { return h("li", { text: it.quantity + " × " + (it.name || it.title) }); }
      var t = titleOf(it) || it.status || it.company || "";
      var extra = factsOf(it, 2).filter(function (f) { return f !== t; });
      var link = linkOf(it);
      return h("li", null, [t, extra.join(" · ")].filter(Boolean).join(" · "), link ? " · " : "", link);
    });
    if (items.length > 5) { shown.push(h("li", { text: "and " + (items.length - 5) + " more" })); }
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
        box.appendChild(h("p", { text: (customer ? "You have no " : "No ") + noun + " yet." }));
        return box;
      }
      box.appendChild(h("h3", { text: (customer ? "Your " : "") + noun + " (" + list.length + ")" }));
      var ul = h("ul");
      list.slice(0, 10).forEach(function (it) { ul.appendChild(renderEntry(it)); });
      box.appendChild(ul);
      if (list.length > 10) { box.appendChild(h("p", { class: "note", text: "And " + (list.length - 10) + " more." })); }
      if (result && result.truncated) { box.appendChild(h("p", { class: "note", text: "Only the most recent are shown." })); }
      return box;
    }
    if (!result || typeof result !== "object") {
      box.appendChild(h("p", { text: result === null || result === undefined ? "Done." : String(result) }));
      return box;
    }
    var done = { create: 1, add: 1, book: 1, cancel: 1, upsert: 1, update: 1 }[verb];
    var title = titleOf(result);
    box.appendChild(h("p", null, done ? "Done: " : "", h("span", { class: "t", text: title || "details below" })));
    var dl = h("dl");
    var rows = 0;
    Object.keys(result).forEach(function (k) {
      var v = result[k];
      if (HIDE_KEYS[k] || rows >= 8 || !isScalar(v) || v === null || v === "" || TITLE_KEYS.indexOf(k) >= 0 && title && title.indexOf(String(v)) >= 0) { return; }
      if (k === "id" && title && title.indexOf("#" + v) === 0) { return; }
      if (isUrl(v)) {
        var href = safeUrl(v);
        if (href) {
          dl.appendChild(h("dt", { text: "Link" }));
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

  // ---------------------------------------------------------------------------------------------
  // Forms from JSON Schema: string (text, textarea, date, date-time, enum), integer, number, boolean.

  var uid = 0;
  function nextId(prefix) { uid += 1; return "botctl-" + prefix + "-" + uid; }

  function fieldsOf(schema) {
    var props = (schema && schema.properties) || {};
    var required = (schema && Array.isArray(schema.required)) ? schema.required : [];
    return Object.keys(props).map(function (key) {
      var s = props[key] || {};
      var type = Array.isArray(s.type) ? s.type.filter(function (t) { return t !== "null"; })[0] : s.type;
      if (!type && Array.isArray(s.enum)) { type = "string"; }
      return { key: key, schema: s, type: type, required: required.indexOf(key) >= 0 };
    }).filter(function (f) { return ["string", "integer", "number", "boolean"].indexOf(f.type) >= 0; });
  }

  function buildField(f) {
    var s = f.schema;
    var id = nextId("f");
    var errId = id + "-err";
    var hintId = id + "-hint";
    var hint = typeof s.description === "string" ? s.description : "";
    var input;
    if (f.type === "boolean") {
      input = h("input", { type: "checkbox", id: id, name: f.key });
      input.checked = s.default === true;
      var wrap = h("div", { class: "field check" }, h("label", { for: id }, input, fieldLabel(f.key)),
        hint ? h("span", { class: "hint", id: hintId, text: hint }) : null);
      if (hint) { input.setAttribute("aria-describedby", hintId); }
      return { field: f, input: input, el: wrap, error: null };
    }
    if (Array.isArray(s.enum)) {
      input = h("select", { id: id, name: f.key });
      if (!f.required || s.default === undefined) { input.appendChild(h("option", { value: "", text: f.required ? "Choose…" : "—" })); }
      s.enum.forEach(function (v) { input.appendChild(h("option", { value: String(v), text: humanValue(v) })); });
      if (s.default !== undefined) { input.value = String(s.default); }
    } else if (f.type === "integer" || f.type === "number") {
      input = h("input", { type: "text", inputmode: f.type === "integer" ? "numeric" : "decimal", id: id, name: f.key, autocomplete: "off" });
      if (s.default !== undefined) { input.value = String(s.default); }
    } else if (s.format === "date") {
      input = h("input", { type: "date", id: id, name: f.key });
    } else if (s.format === "date-time") {
      input = h("input", { type: "datetime-local", id: id, name: f.key });
    } else if ((s.maxLength || 0) > 300 || /description|body|note|message|comment|reason/.test(f.key)) {
      input = h("textarea", { id: id, name: f.key, rows: 3, maxlength: s.maxLength || null });
    } else {
      input = h("input", { type: "text", id: id, name: f.key, maxlength: s.maxLength || null, autocomplete: "off" });
      if (typeof s.default === "string") { input.value = s.default; }
    }
    if (f.required) { input.setAttribute("aria-required", "true"); }
    var error = h("p", { class: "error", id: errId, hidden: true });
    var built = { field: f, input: input, el: null, error: error };
    // Once a field was flagged, re-check it as the visitor fixes it.
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", function () {
      if (input.getAttribute("aria-invalid") === "true") { showFieldError(built, readField(built)[1]); }
    });
    input.setAttribute("aria-describedby", (hint ? hintId + " " : "") + errId);
    var el = h("div", { class: "field" },
      h("label", { for: id }, fieldLabel(f.key), f.required ? h("span", { class: "req" }, " (required)") : null),
      hint ? h("span", { class: "hint", id: hintId, text: hint }) : null,
      input, error);
    built.el = el;
    return built;
  }

  function showFieldError(b, msg) {
    if (!b.error) { return; }
    b.error.hidden = !msg;
    b.error.textContent = msg || "";
    b.input.setAttribute("aria-invalid", msg ? "true" : "false");
  }

  // Mirrors the schema: returns [value or undefined (omit), error message or null].
  function readField(b) {
    var f = b.field;
    var s = f.schema;
    if (f.type === "boolean") { return [b.input.checked, null]; }
    var raw = String(b.input.value || "").trim();
    if (raw === "") { return [undefined, f.required ? "This is required." : null]; }
    if (f.type === "integer" || f.type === "number") {
      var ok = f.type === "integer" ? /^-?\d+$/.test(raw) : /^-?\d+(\.\d+)?$/.test(raw);
      if (!ok) { return [undefined, f.type === "integer" ? "Enter a whole number." : "Enter a number."]; }
      var n = Number(raw);
      if (typeof s.minimum === "number" && n < s.minimum) { return [undefined, "Must be at least " + s.minimum + "."]; }
      if (typeof s.maximum === "number" && n > s.maximum) { return [undefined, "Must be at most " + s.maximum + "."]; }
      return [n, null];
    }
    var value = raw;
    if (s.format === "date-time") {
      var d = new Date(raw);
      if (isNaN(d.getTime())) { return [undefined, "Enter a date and time."]; }
      value = d.toISOString().replace(/\.\d{3}Z$/, "Z");
    }
    if (Array.isArray(s.enum) && s.enum.map(String).indexOf(value) < 0) { return [undefined, "Choose one of the options."]; }
    if (typeof s.minLength === "number" && value.length < s.minLength) { return [undefined, "At least " + s.minLength + " characters."]; }
    if (typeof s.maxLength === "number" && value.length > s.maxLength) { return [undefined, "At most " + s.maxLength + " characters."]; }
    if (s.pattern) {
      var re = null;
      try { re = new RegExp(s.pattern, "u"); } catch (e) { re = null; }
      if (re && !re.test(value)) { return [undefined, "That doesn't look right" + (s.description ? " (" + s.description + ")" : "") + "."]; }
    }
    return [value, null];
  }

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

  // ---------------------------------------------------------------------------------------------
  // Public API and the queue of calls made before this script loaded.

  function dispatch(cmd) {
    if (!Array.isArray(cmd) || typeof api[cmd[0]] !== "function") { return; }
    api[cmd[0]].apply(api, cmd.slice(1));
  }

  var api = {
    __botctl: true,
    version: VERSION,
    identify: function (tokenOrFn) {
      identity.loggedOut = false;
      if (typeof tokenOrFn === "function") {
        identity.fetcher = tokenOrFn;
        return refreshIdentity();
      }
      if (tokenOrFn === undefined) { identity.fetcher = null; return refreshIdentity(); }
      identity.fetcher = null;
      setToken(tokenOrFn);
      return Promise.resolve(identity.token);
    },
    logout: function () {
      identity.loggedOut = true;
      identity.fetcher = null;
      setToken(null);
    },
    open: function () { ui.open(); },
    close: function () { ui.close(); },
    q: { push: function () { Array.prototype.forEach.call(arguments, dispatch); } }
  };
  var queued = existing && Array.isArray(existing.q) ? existing.q.slice() : [];
  window.botctl = api;

  if (document.body) { ui.mount(); } else { document.addEventListener("DOMContentLoaded", ui.mount); }

  var explicit = queued.some(function (c) { return Array.isArray(c) && (c[0] === "identify" || c[0] === "logout"); });
  queued.forEach(dispatch);
  if (ENDPOINT && !explicit) { refreshIdentity(); }

  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(WORKSPACE) || WORKSPACE.length < 2) {
    console.warn("botctl: the script tag needs data-workspace=\"<workspace name>\".");
    ui.failed({ code: "unknown_workspace" });
    return;
  }

  Promise.all([request("GET", "/widget-config"), request("GET", "/actions")]).then(function (both) {
    var cfg = both[0];
    if (!cfg.ok) { ui.failed(cfg); return; }
    if (both[1].ok && Array.isArray(both[1].data.actions)) {
      both[1].data.actions.forEach(function (a) { if (a && typeof a.name === "string") { state.catalog[a.name] = a; } });
    }
    state.config = cfg.data;
    // Show "signed in" from the start when the site's endpoint answers quickly; never wait long for it.
    var patience = new Promise(function (resolve) { setTimeout(resolve, 3000); });
    Promise.race([identity.pending || Promise.resolve(), patience]).then(function () { ui.ready(cfg.data); });
  });
})();
