"""`apply -f` holds a credential bound for a file-chosen host to --allow-host by the setting's declared kind.

A connector's `url` setting chooses the host its credential goes to, whatever the setting is called. The
check once read a list of two names (`site`, `base_url`): a new connector calling its URL setting
`endpoint` would have sent a CI secret to any host a pull request wrote there. These tests register a
throwaway connector (what adding a module and a line to registry.py does) and load files with the
library's `provision.load`, which decides the hosts before it reads a single environment variable.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from botctl import provision
from botctl.connectors import registry
from botctl.connectors.base import ConfigField

ATTACKER = "desk.attacker.test"


@pytest.fixture
def acmedesk(monkeypatch):
    """A ninth connector, an API-key one whose URL setting is called `endpoint`."""
    connector = replace(
        registry.get("calcom"),
        name="acmedesk",
        vendor="Acme Desk",
        base_url="{endpoint}",
        sandbox_path="/acmedesk",
        config=(ConfigField("endpoint", "url", "your Acme Desk URL, e.g. https://desk.example.com"),),
        oauth_client=None,
    )
    monkeypatch.setattr(registry, "_CONNECTORS", (*registry._CONNECTORS, connector))
    monkeypatch.setitem(registry._BY_NAME, connector.name, connector)
    return connector


def _file(tmp_path, connector: str, settings: str, secrets: str = 'api_key_env = "ACME_KEY"\n'):
    p = tmp_path / "botctl.toml"
    p.write_text(
        f'[workspaces.acme]\nplan = "pro"\n\n[workspaces.acme.connections.{connector}]\n{settings}{secrets}'
    )
    return p


def test_a_url_setting_of_any_name_needs_allow_host(tmp_path, monkeypatch, acmedesk):
    monkeypatch.setenv("ACME_KEY", "acme-key-value-never-sent")
    p = _file(tmp_path, "acmedesk", f'endpoint = "https://{ATTACKER}"\n')
    with pytest.raises(provision.HostNotAllowed) as refused:
        provision.load(p)
    assert f"--allow-host {ATTACKER}" in str(refused.value.problems)
    assert "endpoint" in str(refused.value.problems)

    spec = provision.load(p, allow_hosts=[(ATTACKER, None)])
    assert [(h.host, h.allowed) for h in spec.hosts] == [(ATTACKER, True)]


def test_the_dry_run_lists_the_host(tmp_path, monkeypatch, acmedesk):
    monkeypatch.setenv("ACME_KEY", "k")
    p = _file(tmp_path, "acmedesk", f'endpoint = "https://{ATTACKER}:8443/api"\n')
    spec = provision.load(p, check_hosts=False)
    assert [(h.host, h.port, h.allowed) for h in spec.hosts] == [(ATTACKER, 8443, False)]


@pytest.mark.parametrize(
    "connector", [c.name for c in registry.all_connectors() if any(f.kind == "url" for f in c.config)]
)
def test_every_registered_url_setting_is_held(tmp_path, monkeypatch, connector):
    """Each connector that declares a `url` setting: a host the file chooses there is held back."""
    c = registry.get(connector)
    settings = "".join(
        f'{f.name} = "https://{ATTACKER}"\n' if f.kind == "url" else f'{f.name} = "acme"\n' for f in c.config
    )
    secret = 'api_secret_env = "ACME_SECRET"\n' if c.auth_style == "basic_key_secret" else ""
    secrets = 'api_key_env = "ACME_KEY"\n' + secret
    monkeypatch.setenv("ACME_KEY", "k")
    monkeypatch.setenv("ACME_SECRET", "s")
    with pytest.raises(provision.HostNotAllowed) as refused:
        provision.load(_file(tmp_path, connector, settings, secrets))
    assert f"--allow-host {ATTACKER}" in str(refused.value.problems)


def test_a_url_setting_left_at_its_default_needs_nothing(tmp_path, monkeypatch):
    """The default is the vendor's own host (Cal.com's cloud): the connector fixes it."""
    default = next(f.default for f in registry.get("calcom").config if f.name == "base_url")
    monkeypatch.setenv("ACME_KEY", "k")
    spec = provision.load(_file(tmp_path, "calcom", f'base_url = "{default}"\n'))
    assert spec.hosts == []
