"""Email addresses: the one form they are compared in (`email_key`), an operator's (`operator_email`),
and a visitor's as the token's claims and the workspace's rules allow it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botctl.identity.errors import IdentityError

if TYPE_CHECKING:
    from botctl.identity.workspace_rules import Rules

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Unicode categories never allowed in an address: controls, format (bidi, zero-width), surrogates,
# private use, unassigned, and every kind of space or separator.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def operator_email(value: str) -> str:
    """An address an operator gave (`actions run --as-email`, the Python API) in the form visitors'
    addresses are compared (`email_key`); not one address is a usage error, shown escaped."""
    import json

    from botctl.errors import UsageError

    key = email_key(value)
    if key is None:
        raise UsageError(f"{json.dumps(value, ensure_ascii=True)} is not one email address.")
    return key


def email_key(value: object) -> str | None:
    """The form in which two addresses are compared, or None for something that is not one address.

    An all-ASCII address is lowercased whole (ASCII letters only). Otherwise only the domain's ASCII
    letters are lowercased and the rest is kept exactly: no Unicode case mapping, folding or
    normalisation, each of which makes distinct addresses equal (KELVIN SIGN -> k, long s -> s, ß -> ss).
    Controls, bidi and zero-width characters, spaces and a second `@` make it no address at all.
    """
    import unicodedata

    if not isinstance(value, str):
        return None
    v = value.strip(" \t\r\n")
    local, at, domain = v.rpartition("@")
    if not at or not local or not domain or "@" in local or len(local) > 64 or len(domain) > 255:
        return None
    if v.isascii():
        return v.lower() if all("!" <= ch <= "~" for ch in v) else None
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in v):
        return None
    return f"{local}@{domain.translate(_ASCII_LOWER)}"


def _visitor_email(claims: dict[str, Any], r: Rules) -> str | None:
    email = claims.get("email")
    verified = claims.get("email_verified", None)
    if email is None:
        return None
    key = email_key(email)
    if key is None or email != email.strip(" \t\r\n"):
        raise IdentityError("bad_email")
    if not email.isascii() and not r.unicode_email:
        raise IdentityError("email_not_ascii")
    # A site that says the address is unverified is never taken at its word for it; with the rule on,
    # it has to say that it is.
    if (verified is not None or r.require_email_verified) and verified is not True:
        raise IdentityError("email_not_verified")
    return key
