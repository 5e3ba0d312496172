"""How two email addresses are compared (`email_key`): one neutral function that the identity layer
(visitors' and operators' addresses) and the connectors (a vendor's record against the visitor) share,
so neither imports the other."""

from __future__ import annotations

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Unicode categories never allowed in an address: controls, format (bidi, zero-width), surrogates,
# private use, unassigned, and every kind of space or separator.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


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
