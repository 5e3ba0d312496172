// The site's own script (served from 'self': no inline script under this site's CSP).
// Calls made before the widget has loaded are queued in window.botctl.q and replayed by it.
(function () {
  "use strict";
  window.botctl = window.botctl || { q: [] };

  function cmd(name, arg) {
    if (typeof window.botctl[name] === "function") { window.botctl[name](arg); } else { window.botctl.q.push([name, arg]); }
  }

  // Signing out of the site: forget the visitor's identity token in the widget right away.
  var logout = document.getElementById("logout-form");
  if (logout) { logout.addEventListener("submit", function () { cmd("logout"); }); }

  // "Push" mode (/?mode=push): the page fetches the token from its backend and hands it over with
  // botctl.identify(token) instead of the widget's data-identity-endpoint.
  if (document.body.getAttribute("data-identity-mode") === "push" && document.body.getAttribute("data-signed-in") === "true") {
    fetch("/botctl-token", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (b) { if (b && b.token) { cmd("identify", b.token); } });
  }
})();
