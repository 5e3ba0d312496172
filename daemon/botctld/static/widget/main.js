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
      ui.signedOut(); // the visitor's own results are dropped with the token
    },
    confirm: function (id) { return showConfirmation(id); },
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
