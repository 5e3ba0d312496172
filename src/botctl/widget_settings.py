"""A workspace's widget settings: the site's accent colour and logo, the widget's language, and how a
visitor reaches support when no help desk is connected. Published to visitors (`widget-config`), so
every value is checked here, and again by the widget before use.

* accent           a hex colour, `#1f5f4a` or `#1f5` (the launcher, the header, buttons)
* logo             an https URL, or a path on the site's own origin (`/static/logo.svg`), shown in
                   the header; the site's Content-Security-Policy `img-src` must allow it
* locale           the widget's language when the site's tag has no `data-locale`: en | fr
* support_contact  plain text shown when a visitor asks for a person and no help desk is connected
                   ("Email help@example.com, Monday to Friday, 9-17 CET."), at most 500 characters
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botctl import store
from botctl.errors import UsageError

if TYPE_CHECKING:
    from botctl.session import Session

FIELDS = ("accent", "logo", "locale", "support_contact")
LOCALES = ("en", "fr")
MAX_CONTACT = 500
MAX_LOGO = 2048
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _bad(what: str, value: str, expected: str, hint: str) -> UsageError:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return UsageError(f"{what} {shown!r} is not {expected}.", hint=hint, code="invalid_widget_setting")


def check_accent(value: str) -> str:
    if not _HEX.fullmatch(value):
        raise _bad("accent", value, "a hex colour", "Give it as #RRGGBB, e.g. --accent '#1f5f4a'.")
    return value.lower()


def check_logo(value: str) -> str:
    hint = "Give an https:// URL or a path on your site starting with / (e.g. /static/logo.svg)."
    if len(value) > MAX_LOGO or _CONTROL.search(value) or any(c.isspace() for c in value) or "\\" in value:
        raise _bad("logo", value, "a usable URL", hint)
    if value.startswith("/") and not value.startswith("//"):
        return value
    try:
        u = urlsplit(value)
    except ValueError:
        raise _bad("logo", value, "a usable URL", hint) from None
    if u.scheme != "https" or not u.hostname or u.username or u.password:
        raise _bad("logo", value, "an https URL or a same-origin path", hint)
    return value


def check_locale(value: str) -> str:
    if value not in LOCALES:
        raise _bad("locale", value, "a language the widget ships", f"Choose one of: {', '.join(LOCALES)}.")
    return value


def check_contact(value: str) -> str:
    text = value.strip()
    if (
        not text
        or len(text) > MAX_CONTACT
        or _CONTROL.sub("", text.replace("\n", " ")) != text.replace("\n", " ")
    ):
        raise _bad(
            "support contact",
            value,
            f"plain text of 1-{MAX_CONTACT} characters",
            "Say how visitors reach you, e.g. 'Email help@example.com (we answer within a day).'",
        )
    return text


CHECKS = {
    "accent": check_accent,
    "logo": check_logo,
    "locale": check_locale,
    "support_contact": check_contact,
}


def get(conn: sqlite3.Connection, ws: Any) -> dict[str, str]:
    """The workspace's settings (only the ones set)."""
    row = conn.execute("SELECT settings FROM widget_settings WHERE workspace_id = ?", (ws.id,)).fetchone()
    if row is None:
        return {}
    data = json.loads(row[0])
    return {k: v for k, v in data.items() if k in FIELDS and isinstance(v, str)}


def update(app: Session, ws: Any, changes: dict[str, str | None]) -> dict[str, str]:
    """Set (a string) or clear (None) settings; every value checked first, then one transaction and one
    `widget.updated` audit record naming what changed. Returns the settings as they now are."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise UsageError(
            f"unknown widget setting(s): {', '.join(sorted(unknown))}.",
            hint=f"Settings: {', '.join(FIELDS)}.",
            code="invalid_widget_setting",
        )
    checked = {k: (None if v is None else CHECKS[k](v)) for k, v in changes.items()}
    conn = app.vault.conn
    with store.transaction(conn):
        before = get(conn, ws)
        after = {**before, **{k: v for k, v in checked.items() if v is not None}}
        for k, v in checked.items():
            if v is None:
                after.pop(k, None)
        changed = sorted(k for k in FIELDS if before.get(k) != after.get(k))
        if changed:
            conn.execute(
                "INSERT INTO widget_settings (workspace_id, settings, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (workspace_id) DO UPDATE SET settings = excluded.settings, "
                "updated_at = excluded.updated_at",
                (ws.id, json.dumps(after, sort_keys=True), store.now_iso()),
            )
            app.audit("widget.updated", workspace=ws.name, detail={"changed": changed})
    return after
