"""A click group that imports a command group's module only when that group is used.

Start-up time is a feature (every TAB press re-runs botctl): `botctl workspace list` imports the
workspace commands and nothing else. Help text for the top-level listing is kept here so that
`botctl --help` does not import every group either.
"""

from __future__ import annotations

import importlib

from typer.core import TyperGroup

# name -> (module with `app: typer.Typer`, one-line help, the command inside that app or None for the group)
COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "demo": ("botctl.cli.demo_cmd", "The whole product in one command, against local stand-in vendors.", "demo"),
    "init": ("botctl.cli.init_cmd", "Create the home and the master key (safe to re-run).", "init"),
    "apply": ("botctl.cli.apply_cmd", "Provision workspaces from a TOML file (idempotent; --dry-run, --prune).", "apply"),
    "workspace": ("botctl.cli.workspace_cmd", "Create and manage workspaces (tenants).", None),
    "connectors": ("botctl.cli.connectors_cmd", "The tools botctl can connect, and their actions.", None),
    "connect": ("botctl.cli.connect_cmd", "Connect a tool to a workspace (credential checked, stored encrypted).",
                "connect"),
    "connections": ("botctl.cli.connections_cmd", "List, test and refresh connections.", None),
    "oauth-app": ("botctl.cli.oauth_app_cmd", "Register your own OAuth app per vendor (client id and secret).", None),
    "disconnect": ("botctl.cli.connect_cmd", "Revoke and delete a connection's credential.", "disconnect"),
    "knowledge": ("botctl.cli.knowledge_cmd", "Documents the bot answers from, per workspace; ask and search.", None),
    "actions": ("botctl.cli.actions_cmd", "List actions; run one as an operator.", None),
    "mcp": ("botctl.cli.mcp_cmd", "The workspace's actions as MCP tools: serve on stdio, waive confirmations.", None),
    "identity": ("botctl.cli.identity_cmd", "Visitor identity keys: HS256 secrets or your site's public keys.", None),
    "daemon": ("botctl.cli.daemon_cmd", "Start, stop and inspect the daemon (provider + edge).", None),
    "vault": ("botctl.cli.vault_cmd", "The encrypted vault: status and master-key rotation.", None),
    "db": ("botctl.cli.db_cmd", "Where the tables live (SQLite or PostgreSQL): copy a home to another database.",
           None),
    "audit": ("botctl.cli.audit_cmd", "Read, follow and verify the tamper-evident audit log.", None),
    "console": ("botctl.cli.console_cmd", "A read-only web console on 127.0.0.1: audit timeline, connections, "
                "activity.", "console"),
    "alert": ("botctl.cli.alert_cmd", "Signed webhooks for needs_reauth, refresh failures, a broken chain, restarts.",
              None),
    "completions": ("botctl.cli.completions_cmd", "Print the bash, zsh or fish completion script.", "completions"),
    "doctor": ("botctl.cli.doctor_cmd", "Check the home, keys, daemon, connections and audit chain; say what to fix.",
               "doctor"),
    "sandbox": ("botctl.cli.sandbox_cmd", "Run local stand-ins of the eight vendor APIs.", None),
}


class Interrupted(Exception):
    """Ctrl-C, carried past typer's own handler (which would exit 130 without a word) to `main.run`."""


class OutputClosed(Exception):
    """stdout's reader went away (`botctl audit | head -1`): not an error, carried past typer to `main.run`."""


class LazyGroup(TyperGroup):
    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Interrupted() from exc
        except BrokenPipeError as exc:
            raise OutputClosed() from exc

    def list_commands(self, ctx):  # type: ignore[no-untyped-def]
        return list(COMMANDS) + [c for c in super().list_commands(ctx) if c not in COMMANDS]

    def get_command(self, ctx, cmd_name):  # type: ignore[no-untyped-def]
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            import typer.main

            module_name, help_text, inner = COMMANDS[cmd_name]
            sub = importlib.import_module(module_name).app
            command = typer.main.get_command(sub)
            if inner is not None and hasattr(command, "commands") and inner in command.commands:
                command = command.commands[inner]
            command.name = cmd_name
            if not command.help:
                command.help = help_text
            self.commands[cmd_name] = command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx, formatter):  # type: ignore[no-untyped-def]
        rows = [(name, help_text) for name, (_, help_text, _) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
