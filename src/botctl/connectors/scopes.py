"""Does a connection's granted scope set cover what an action needs?

A plain `needed in granted` check is wrong for most vendors: a broader grant covers the narrow
scope an action names (Zendesk's `read` covers `tickets:read`; a write permission usually implies
the matching read). Each connector declares its rule as `Connector.broader_scopes`, usually built
with the helpers below; this module only loops over it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botctl.connectors.base import Connector

ScopeRule = Callable[[str], Iterable[str]]


def write_implies_read(read: str, write: str, *, prefix: bool = False) -> ScopeRule:
    """`x<read>` is covered by `x<write>` (suffixes), or `<read>x` by `<write>x` with `prefix`."""

    def rule(needed: str) -> tuple[str, ...]:
        if prefix and needed.startswith(read):
            return (write + needed[len(read) :],)
        if not prefix and needed.endswith(read):
            return (needed[: -len(read)] + write,)
        return ()

    return rule


def also_covered_by(extra: Mapping[str, Iterable[str]]) -> ScopeRule:
    """Named scopes covered by other named scopes, e.g. {"read": ["read_write"]}."""
    frozen = {k: tuple(v) for k, v in extra.items()}
    return lambda needed: frozen.get(needed, ())


def any_of(*rules: ScopeRule) -> ScopeRule:
    """Every scope any of `rules` says covers `needed`."""
    return lambda needed: tuple(s for rule in rules for s in rule(needed))


def _alternatives(connector: Connector, needed: str) -> set[str]:
    """Every granted scope that would cover `needed` (including itself)."""
    return {needed, "*", *connector.broader_scopes(needed)}


def missing_scopes(connector: Connector, granted: Iterable[str], required: Iterable[str]) -> list[str]:
    """The required scopes that `granted` does not cover, in order (empty: the action may run)."""
    have = set(granted)
    return [s for s in required if not (_alternatives(connector, s) & have)]
