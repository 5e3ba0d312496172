"""Connection config → base URL, for the real vendor and for the sandbox.

Config values end up inside a URL that will carry a credential, so each one is checked against
the kind its `ConfigField` declares: a `label` (a tenant: Zendesk's subdomain, Shopify's shop) must
be a single DNS label — `evil.example/x#` would otherwise send the token to evil.example — and a
`url` (a self-hosted site) must be a bare http(s) URL without user info, query or fragment.

Sandbox paths (`Connector.sandbox_path`) use the same placeholders, plus the one a `url` field
names as its `sandbox_tenant`: the first label of the URL's host (`https://acme.example.com/shop`
→ `acme`), which is how the sandbox names tenants.

Errors name the setting as the library knows it ("the subdomain setting"); `ConfigError.worded`
lets a front end name it its own way (the CLI: `--subdomain`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botctl.connectors.base import ActionError, ConfigField, Connector

if TYPE_CHECKING:
    from collections.abc import Sequence

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# How a setting is named: by its field name, in a sentence ("the subdomain setting") or in a list.
Word = Callable[[str], str]


def setting_word(name: str) -> str:
    return f"the {name} setting"


class ConfigError(ActionError):
    """A connection setting is missing, not taken by the connector, or malformed (`invalid_params`).

    `message` names settings neutrally; `worded(word, listed)` composes the message and hint again
    with `word(name)` for a setting in a sentence and `listed(name)` for one in a list."""

    def __init__(
        self,
        compose: Callable[[Word], str],
        *,
        hint: Callable[[Word], str] | None = None,
        fields: Sequence[str] = (),
    ) -> None:
        self._compose = compose
        self._hint = hint
        self.fields = tuple(fields)
        message, self.hint = self.worded(setting_word, lambda name: name)
        super().__init__("invalid_params", message)

    def worded(self, word: Word, listed: Word) -> tuple[str, str | None]:
        return self._compose(word), (self._hint(listed) if self._hint else None)


def takes(connector: Connector) -> Callable[[Word], str]:
    """The hint listing what a connector takes: "It takes: subdomain." / "It takes no settings."."""

    def hint(listed: Word) -> str:
        names = [listed(f.name) for f in connector.config]
        return f"It takes: {', '.join(names)}." if names else "It takes no settings."

    return hint


def check_given(connector: Connector, given: Mapping[str, Any]) -> None:
    """Refuse settings the connector does not take (the first one, by name)."""
    extra = sorted(k for k, v in given.items() if v and k not in connector.config_fields)
    if extra:
        vendor, name = connector.vendor, extra[0]
        raise ConfigError(lambda w: f"{vendor} does not take {w(name)}.", hint=takes(connector), fields=extra)


def normalize_config(connector: Connector, config: Mapping[str, str]) -> dict[str, str]:
    """The connector's config fields, defaulted, trimmed and checked; raises ConfigError (invalid_params)."""
    out = {f.name: f.default for f in connector.config if f.default is not None}
    out.update({k: v for k, v in config.items() if k in connector.config_fields and v})
    for field in connector.config:
        value = str(out.get(field.name, "")).strip()
        if not value:
            raise _missing(connector, field)
        out[field.name] = (
            _check_url(connector, field, value)
            if field.kind == "url"
            else _check_label(connector, field, value)
        )
    return out


def base_url_for(connector: Connector, config: Mapping[str, str]) -> str:
    """The real vendor base URL for this config, e.g. https://acme.zendesk.com."""
    return _fill(connector.base_url, normalize_config(connector, config)).rstrip("/")


def sandbox_url_for(connector: Connector, config: Mapping[str, str], sandbox_url: str) -> str:
    """The sandbox stand-in for `base_url_for`: `{sandbox}{sandbox_path}` with the same config."""
    values = normalize_config(connector, config)
    for field in connector.config:
        if field.sandbox_tenant:
            values.setdefault(
                field.sandbox_tenant, (urlsplit(values[field.name]).hostname or "").split(".")[0]
            )
    return sandbox_url.rstrip("/") + _fill(connector.sandbox_path, values).rstrip("/")


def __getattr__(name: str) -> Any:
    # DEFAULTS: connector name -> {setting: default}, from the registry's declarations (for callers
    # that read defaults without a Connector at hand).
    if name == "DEFAULTS":
        from botctl.connectors import registry

        return {
            c.name: {f.name: f.default for f in c.config if f.default is not None}
            for c in registry.all_connectors()
            if any(f.default is not None for f in c.config)
        }
    raise AttributeError(name)


def _fill(template: str, values: Mapping[str, str]) -> str:
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    missing = [f for f in fields if f not in values]
    if missing:
        raise ActionError("invalid_params", f"missing connection setting: {', '.join(missing)}")
    return template.format(**{f: values[f] for f in fields})


def _missing(connector: Connector, field: ConfigField) -> ConfigError:
    vendor, name, help_text = connector.vendor, field.name, field.help
    return ConfigError(lambda w: f"{vendor} needs {w(name)} ({help_text}).", fields=[name])


def _check_label(connector: Connector, field: ConfigField, value: str) -> str:
    v = value.lower()
    for prefix in ("https://", "http://"):
        if v.startswith(prefix):
            v = v[len(prefix) :]
    v = v.rstrip("/")
    if field.suffix and v.endswith(field.suffix):
        v = v[: -len(field.suffix)]
    if not _LABEL.match(v):
        vendor, name = connector.vendor, field.name
        raise ConfigError(
            lambda w: f"{vendor}: {w(name)} must be a name like 'acme', not {value!r}.", fields=[name]
        )
    return v


def _check_url(connector: Connector, field: ConfigField, value: str) -> str:
    parts = urlsplit(value)
    vendor, name = connector.vendor, field.name
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(
            lambda w: f"{vendor}: {w(name)} must be a URL like https://shop.example.", fields=[name]
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(
            lambda w: f"{vendor}: {w(name)} must not carry user info, a query or a fragment.", fields=[name]
        )
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
