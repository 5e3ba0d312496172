/* botctl widget (minimal until the full widget lands): loads the workspace's public config.
   <script src="https://BOT_HOST/widget.js" data-workspace="acme" async></script>
   window.botctl.identify(token) passes the site's signed identity token. No third-party requests. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var base = new URL(script.src).origin;
  var workspace = script.getAttribute("data-workspace");
  var token = null;
  function call(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (token) { headers.Authorization = "Bearer " + token; }
    return fetch(base + "/v1/workspaces/" + encodeURIComponent(workspace) + path, {
      method: method, headers: headers, body: body ? JSON.stringify(body) : undefined, credentials: "omit"
    }).then(function (r) { return r.json(); });
  }
  window.botctl = {
    identify: function (t) { token = t; },
    config: function () { return call("GET", "/widget-config"); },
    run: function (action, params) { return call("POST", "/actions/" + encodeURIComponent(action), { params: params || {} }); }
  };
})();
