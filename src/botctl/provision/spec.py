"""What an accepted file asks for (`load` returns a `Spec`; `plan` compares it with the vault)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botctl.provision.envvars import EnvRef
from botctl.provision.hosts import HostUse
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.connectors.base import Connector


@dataclass
class KeySpec:
    kid: str
    alg: str
    pem: str | None
    jwks_url: str | None


@dataclass
class AppSpec:
    connector: Connector
    client_id: str
    secret: Secret | None
    settings: dict[str, Any]
    secret_ref: EnvRef | None = None  # read into `secret` once the whole file is accepted


@dataclass
class ConnSpec:
    connector: Connector
    config: dict[str, str]
    credential: dict[str, Secret]
    refs: dict[str, EnvRef] = field(default_factory=dict)  # read into `credential` likewise
    where: str = ""  # "FILE:LINE: key.path" of the connection's table, for errors at apply time


@dataclass
class WorkspaceSpec:
    name: str
    fields: dict[str, Any] = field(
        default_factory=dict
    )  # only the ones the file gives: plan, display_name, origins
    issuer: str | None = None  # None: not managed; "": no issuer required
    max_lifetime: int | None = None
    hs256: bool = False
    keys: list[KeySpec] = field(default_factory=list)
    knowledge_paths: list[Path] = field(default_factory=list)
    docs: dict[str, str] = field(default_factory=dict)  # document name -> sha256
    oauth_apps: dict[str, AppSpec] = field(default_factory=dict)
    connections: dict[str, ConnSpec] = field(default_factory=dict)


@dataclass
class Spec:
    file: Path
    workspaces: dict[str, WorkspaceSpec]
    global_apps: dict[str, AppSpec]
    base: Path = Path(".")  # the file's folder (resolved): every path in the file stays inside it
    hosts: list[HostUse] = field(default_factory=list)

    def apps(self) -> list[AppSpec]:
        """Every OAuth app in the file: the global ones, then each workspace's."""
        return list(self.global_apps.values()) + [
            a for w in self.workspaces.values() for a in w.oauth_apps.values()
        ]

    def resolve_secrets(self) -> None:
        """Move the values read from the environment into the apps and connections."""
        for a in self.apps():
            a.secret = a.secret_ref.secret if a.secret_ref is not None else None
        for w in self.workspaces.values():
            for cs in w.connections.values():
                cs.credential = {k: r.secret for k, r in cs.refs.items() if r.secret is not None}
