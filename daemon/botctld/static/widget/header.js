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
    data-locale              the widget's language: en or fr (default: the workspace's, else the page's lang)

  JavaScript (calls made before this script loads are queued):

    window.botctl = window.botctl || {q: []};
    botctl.q.push(["identify", token]);    // or, once loaded: botctl.identify(token)
    botctl.identify(token)                 // a signed identity token (HS256/RS256/ES256/EdDSA JWT, aud = workspace)
    botctl.identify(() => fetchToken())    // a function returning a token (or a promise of one), re-asked on expiry
    botctl.identify()                      // ask data-identity-endpoint again (after an in-page sign-in)
    botctl.logout()                        // forget the token (in memory only; never stored)
    botctl.open() / botctl.close()
    botctl.confirm(id)                     // show a change an MCP bot asked for (its confirmation id) with Confirm / Cancel
    botctl.confirm()                       // show every change still waiting for the signed-in visitor

  Theming: the workspace's accent colour and logo (`botctl widget set`), light or dark as the visitor's
  system prefers; the site's own stylesheet may still set `#botctl-widget { --botctl-accent: #1f5f4a; }`.
  The conversation survives page loads in sessionStorage (this tab only; never the identity token).
  State, for the site's own scripts and styles: #botctl-widget[data-state=loading|ready|error],
  [data-identity=anonymous|signed-in], [data-open].

  Security: no third-party requests (only this script's origin, the same-origin identity endpoint, and
  the logo the operator set),
  no eval, no innerHTML, no inline styles or handlers: styles are a constructed stylesheet adopted by a
  Shadow DOM, so the widget runs under a strict CSP (style-src without 'unsafe-inline', Trusted Types).
  Everything coming from the daemon, the vendors or the visitor is rendered as text; answers as a small
  Markdown subset built with DOM calls (links only to http(s) URLs).
*/
