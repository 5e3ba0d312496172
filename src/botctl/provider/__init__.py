"""The provider process: the only process that can decrypt credentials.

It listens on a Unix socket (0600, in the home's 0700 run/ directory), never on TCP. The edge
forwards visitor requests to it as data; it verifies identity, applies policy, runs actions through
`botctl.actions.run_action`, refreshes OAuth tokens ahead of expiry, and writes the audit log.
"""
