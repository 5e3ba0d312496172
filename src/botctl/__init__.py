"""botctl: the secure half of a self-hosted support chatbot.

The public Python API is `botctl.Botctl` (docs/python-api.md); it is imported on first use, so the
CLI's start-up does not pay for it.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["ActionError", "Botctl", "BotctlError", "Visitor", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Botctl", "ActionError", "BotctlError", "Visitor"):
        from botctl import api

        return getattr(api, name)
    raise AttributeError(f"module 'botctl' has no attribute {name!r}")
