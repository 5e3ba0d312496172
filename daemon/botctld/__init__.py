"""botctld: the edge — the visitor-facing HTTP server.

It serves the widget script and the widget API, enforces CORS, size and rate limits, and forwards
each request to the provider over its Unix socket. It holds no key, opens no database, and imports
nothing from `botctl` (tests/test_edge_isolation.py fails if it does): a bug here can leak nothing
the edge does not have.
"""

__version__ = "0.1.0"
