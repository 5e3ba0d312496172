"""The JSON Schema of botctl.toml, built from the same key sets and connector registry `apply` checks with.

Published as docs/botctl.schema.json (for editors: Taplo, Even Better TOML, `#:schema` comments);
tests/test_apply_schema.py keeps the file equal to `json_schema()` and the examples valid against it.
The schema says which keys exist and their types; `apply` still checks everything it cannot (hosts,
paths, durations, that a variable is set), so a file the schema accepts can still be refused.
"""

from __future__ import annotations

from typing import Any

ENV_NAME = "^[A-Z_][A-Z0-9_]*$"


def _env(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": ENV_NAME, "description": description}


def _obj(properties: dict[str, Any], description: str, required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = required
    return out


def _oauth_app() -> dict[str, Any]:
    from botctl.provision.sections import _OAUTH_APP_KEYS

    props: dict[str, Any] = {k: {"type": "string"} for k in sorted(_OAUTH_APP_KEYS)}
    props["client_secret_env"] = _env(
        "The environment variable holding the client secret (never the secret)."
    )
    props["token_auth"] = {"enum": ["client_secret_post", "client_secret_basic", "none"]}
    props["scopes"] = {"type": "string", "description": "Space-separated scopes, overriding the connector's."}
    return _obj(props, "Your own OAuth app for this vendor.", ["client_id"])


def _connection(connector: Any) -> dict[str, Any]:
    props: dict[str, Any] = {f: {"type": "string"} for f in connector.config_fields}
    if connector.auth == "api_key":
        props["api_key_env"] = _env("The environment variable holding the API key.")
        if connector.auth_style == "basic_key_secret":
            props["api_secret_env"] = _env("The environment variable holding the key's secret.")
    else:
        props["access_token_env"] = _env("The environment variable holding a vendor-issued access token.")
    props["sandbox"] = {
        "type": "string",
        "format": "uri",
        "description": "Send this connection to a local sandbox (else BOTCTL_SANDBOX).",
    }
    return _obj(props, f"A {connector.vendor} connection.")


def json_schema() -> dict[str, Any]:
    from botctl.connectors import registry
    from botctl.workspaces import NAME_RE, PLANS

    connectors = list(registry.all_connectors())
    oauth_names = [c.name for c in connectors if c.auth != "api_key"]
    public_key = _obj(
        {
            "kid": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
            "alg": {"enum": ["RS256", "ES256", "EdDSA"]},
            "path": {"type": "string", "description": "A PEM public key, relative to the file."},
            "jwks_url": {"type": "string", "pattern": "^https://"},
        },
        "Your site's public key: exactly one of path or jwks_url.",
        ["kid", "alg"],
    )
    public_key["oneOf"] = [{"required": ["path"]}, {"required": ["jwks_url"]}]
    identity = _obj(
        {
            "issuer": {"type": "string"},
            "max_lifetime": {"type": "string", "pattern": "^[0-9]+[smhdw]$", "description": "e.g. 1h"},
            "hs256": {"type": "boolean", "description": "Generate an HS256 secret on first apply."},
            "public_keys": {"type": "array", "items": public_key},
        },
        "Visitor identity: token rules and keys.",
    )
    oauth_apps = _obj({n: _oauth_app() for n in oauth_names}, "OAuth apps, by connector.")
    workspace = _obj(
        {
            "plan": {"enum": list(PLANS)},
            "display_name": {"type": "string"},
            "origins": {"type": "array", "items": {"type": "string", "pattern": "^https?://[^/]+$"}},
            "identity": identity,
            "knowledge": _obj(
                {"paths": {"type": "array", "items": {"type": "string"}}},
                "Documents the bot answers from (files or folders, relative to the file).",
            ),
            "oauth_apps": oauth_apps,
            "connections": _obj({c.name: _connection(c) for c in connectors}, "Connections, by connector."),
        },
        "One workspace.",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "botctl.toml",
        "description": "What `botctl apply -f` provisions. Secrets are never in the file: only the names of "
        "environment variables (*_env).",
        "type": "object",
        "properties": {
            "workspaces": {
                "type": "object",
                "additionalProperties": workspace,
                "propertyNames": {"pattern": NAME_RE.pattern, "not": {"pattern": "--"}},
            },
            "oauth_apps": oauth_apps,
        },
        "additionalProperties": False,
    }
