"""The one refusal of an identity token: `IdentityError`, whose reason goes to the audit record only."""


class IdentityError(Exception):
    """The token was refused. `reason` is for the audit record; visitors only ever see invalid_identity."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
