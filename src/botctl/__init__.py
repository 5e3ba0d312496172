"""botctl: the secure half of a self-hosted support chatbot."""

__version__ = "0.1.0"
