"""The old home of bring-your-own OAuth apps; they live in `botctl.oauth.apps` now (this re-exports it)."""

from botctl.oauth.apps import (
    CLIENT_ID_RE,
    GLOBAL_KEY_NAME,
    GLOBAL_SCOPE,
    SECRET_FIELD,
    SETTINGS,
    StoredApp,
    client_secret,
    find,
    list_all,
    lookup,
    owner,
    remove,
    resolve,
    set_app,
    stored_secret_for,
    validate_settings,
)

__all__ = ["CLIENT_ID_RE", "GLOBAL_KEY_NAME", "GLOBAL_SCOPE", "SECRET_FIELD", "SETTINGS", "StoredApp", "client_secret",
           "find", "list_all", "lookup", "owner", "remove", "resolve", "set_app", "stored_secret_for",
           "validate_settings"]
