"""The widget script (`/widget.js`) as one file, assembled from its parts in static/widget/.

Each part has one job; they share one scope: the bundle is header.js (the licence-style comment a
site sees first), then the parts below, in this order, inside one strict-mode function. A part uses
what the parts before it declare (function declarations are hoisted, so the UI may call a function a
later part declares; `var` values are not, so a part reads another's values only when it runs). A new
part (a dialog, a panel) is a file here and one entry in PARTS.

Assembled once when the edge starts (botctld.state.Edge), byte for byte the same every time: the
ETag, the gzip copy and a site's `integrity=` pin stay stable across restarts of the same release.
"""

from __future__ import annotations

from pathlib import Path

WIDGET_DIR = Path(__file__).parent / "static" / "widget"

PARTS = (
    "boot.js",  # the script tag's settings, URL checks
    "i18n.js",  # the visitor-facing strings, per language (data-locale)
    "styles.js",  # the constructed stylesheet (light and dark), the workspace's accent
    "dom.js",  # DOM helpers (text only, never HTML), icons
    "markdown.js",  # answers' safe Markdown subset, built with DOM calls
    "identity.js",  # the visitor's identity token (memory only)
    "api.js",  # the edge's API, error messages
    "results.js",  # action results in plain language
    "forms.js",  # action forms from JSON Schema
    "transcript.js",  # the conversation kept across page loads (sessionStorage, never the token)
    "ui.js",  # the launcher, panel, conversation, tray, the confirmation sheet (ui.confirm)
    "answers.js",  # an answer's sources and the visitor's thumbs up / down
    "handoff.js",  # "talk to a person": a ticket with the conversation, or how to reach support
    "confirm.js",  # a change an MCP bot asked for, confirmed or cancelled by the visitor (botctl.confirm)
    "main.js",  # the public API (window.botctl) and start-up
)


def part_paths() -> list[Path]:
    return [WIDGET_DIR / "header.js", *(WIDGET_DIR / p for p in PARTS)]


def bundle() -> bytes:
    """The whole script, as the edge serves it."""
    body = "".join((WIDGET_DIR / p).read_text(encoding="utf-8") for p in PARTS)
    head = (WIDGET_DIR / "header.js").read_text(encoding="utf-8")
    return (head + "(function () {\n" + body + "})();\n").encode("utf-8")
