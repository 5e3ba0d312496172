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

