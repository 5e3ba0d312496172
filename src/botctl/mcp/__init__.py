"""The workspace's actions as MCP tools (Model Context Protocol), for a bot acting for a verified visitor.

    tools.py          which actions are tools for a caller; names, schemas, annotations
    server.py         the JSON-RPC methods (initialize, ping, tools/list, tools/call): `handle`
    confirmations.py  the visitor's confirmation of a write: stored params, bound to the visitor, answered once
    stdio.py          `botctl mcp serve --stdio`: the same server for an operator's local agent

The edge (botctld.mcp) carries the HTTP transport and holds nothing; the provider (botctl.provider.mcp)
verifies the token and calls `server.handle`.
"""
