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

