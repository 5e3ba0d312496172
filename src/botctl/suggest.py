""" "Did you mean ...?" for a mistyped name (commands, connectors, workspaces, actions). Imported only on errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    choices = list(choices)
    found = difflib.get_close_matches(word, choices, n=n, cutoff=0.6)
    if not found:  # `stripe.invoices` for `stripe.list_my_invoices`: a unique containing match
        containing = [c for c in choices if word and word.lower() in c.lower()]
        found = containing[:n] if 0 < len(containing) <= n else []
    return found


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """ "Did you mean 'x'?" (or 'x' or 'y'), or None when nothing is close."""
    found = closest(word, choices)
    if not found:
        return None
    return "Did you mean " + " or ".join(repr(f) for f in found) + "?"


def hint(word: str, choices: Iterable[str], otherwise: str) -> str:
    """The suggestion, then the usual hint."""
    guess = did_you_mean(word, choices)
    return f"{guess} {otherwise}" if guess else otherwise
