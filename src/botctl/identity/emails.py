"""Email addresses: an operator's (`operator_email`) in the form they are compared in (`email_key`, from
botctl.email_addresses), and a visitor's as the token's claims and the workspace's rules allow it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botctl.email_addresses import email_key
from botctl.identity.errors import IdentityError

if TYPE_CHECKING:
    from botctl.identity.workspace_rules import Rules


def operator_email(value: str) -> str:
    """An address an operator gave (`actions run --as-email`, the Python API) in the form visitors'
    addresses are compared (`email_key`); not one address is a usage error, shown escaped."""
    import json

    from botctl.errors import UsageError

    key = email_key(value)
    if key is None:
        raise UsageError(f"{json.dumps(value, ensure_ascii=True)} is not one email address.")
    return key


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
