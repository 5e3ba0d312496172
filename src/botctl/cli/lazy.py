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
    "demo": (
        "botctl.cli.demo_cmd",
        "The whole product in one command, against local stand-in vendors.",
        "demo",
    ),
    "init": ("botctl.cli.init_cmd", "Create the home and the master key (safe to re-run).", "init"),
    "apply": (
        "botctl.cli.apply_cmd",
        "Provision workspaces from a TOML file (idempotent; --dry-run, --prune).",
        "apply",
    ),
    "workspace": ("botctl.cli.workspace_cmd", "Create and manage workspaces (tenants).", None),
    "connectors": ("botctl.cli.connectors_cmd", "The tools botctl can connect, and their actions.", None),
    "connect": (
        "botctl.cli.connect_cmd",
        "Connect a tool to a workspace (credential checked, stored encrypted).",
        "connect",
    ),
    "connections": ("botctl.cli.connections_cmd", "List, test and refresh connections.", None),
    "oauth-app": (
        "botctl.cli.oauth_app_cmd",
        "Register your own OAuth app per vendor (client id and secret).",
        None,
    ),
    "disconnect": ("botctl.cli.connect_cmd", "Revoke and delete a connection's credential.", "disconnect"),
    "knowledge": (
        "botctl.cli.knowledge_cmd",
        "Documents the bot answers from, per workspace; ask and search.",
        None,
    ),
    "widget": (
        "botctl.cli.widget_cmd",
        "The widget's accent colour, logo, language and support contact.",
        None,
    ),
    "actions": ("botctl.cli.actions_cmd", "List actions; run one as an operator.", None),
    "mcp": (
        "botctl.cli.mcp_cmd",
        "The workspace's actions as MCP tools: serve on stdio, waive confirmations.",
        None,
    ),
    "identity": (
        "botctl.cli.identity_cmd",
        "Visitor identity keys: HS256 secrets or your site's public keys.",
        None,
    ),
    "daemon": ("botctl.cli.daemon_cmd", "Start, stop and inspect the daemon (provider + edge).", None),
    "cluster": (
        "botctl.cli.cluster_cmd",
        "Certificates for the mutual-TLS link to edges on other hosts.",
        None,
    ),
    "edge": (
        "botctl.cli.edge_cmd",
        "Run an edge on its own host, reaching a remote provider over mutual TLS.",
        None,
    ),
    "vault": ("botctl.cli.vault_cmd", "The encrypted vault: status and master-key rotation.", None),
    "db": (
        "botctl.cli.db_cmd",
        "Where the tables live (SQLite or PostgreSQL): copy a home to another database.",
        None,
    ),
    "audit": ("botctl.cli.audit_cmd", "Read, follow and verify the tamper-evident audit log.", None),
    "console": (
        "botctl.cli.console_cmd",
        "A read-only web console on 127.0.0.1: audit timeline, connections, activity.",
        "console",
    ),
    "alert": (
        "botctl.cli.alert_cmd",
        "Signed webhooks for needs_reauth, refresh failures, a broken chain, restarts.",
        None,
    ),
    "completions": (
        "botctl.cli.completions_cmd",
        "Print the bash, zsh or fish completion script.",
        "completions",
    ),
    "doctor": (
        "botctl.cli.doctor_cmd",
        "Check the home, keys, daemon, connections and audit chain; say what to fix.",
        "doctor",
    ),
    "sandbox": ("botctl.cli.sandbox_cmd", "Run local stand-ins of the eight vendor APIs.", None),
}


help_asked = False  # set by main.run when -h/--help is on the command line: only then are examples loaded


class Interrupted(Exception):
    """Ctrl-C, carried past typer's own handler (which would exit 130 without a word) to `main.run`."""


class OutputClosed(Exception):
    """stdout's reader went away (`botctl audit | head -1`): not an error, carried past typer to `main.run`."""


class SuggestingGroup(TyperGroup):
    """Every botctl group, the root and its subgroups: a mistyped command gets "Did you mean ...?", each
    command's --help ends with its examples (botctl.cli.examples), and the command list is not cut short."""

    def get_command(self, ctx, cmd_name):  # type: ignore[no-untyped-def]
        command = super().get_command(ctx, cmd_name)
        if command is not None and not command.epilog and help_asked:
            from botctl.cli.examples import epilog

            parent = (
                ctx.command_path.split(" ", 1)[1] + " " if ctx is not None and " " in ctx.command_path else ""
            )
            command.epilog = epilog(parent + cmd_name)
        return command

    def format_commands(self, ctx, formatter):  # type: ignore[no-untyped-def]
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))  # the whole first paragraph
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        from typer import _click

        try:
            return super().resolve_command(ctx, args)
        except _click.exceptions.UsageError as exc:
            name = args[0] if args else ""
            if name.startswith("-") or self.get_command(ctx, name) is not None:
                raise
            from botctl.suggest import did_you_mean

            guess = did_you_mean(name, self.list_commands(ctx))
            if guess is None:
                raise
            raise _click.exceptions.UsageError(f"No such command {name!r}. {guess}", ctx=exc.ctx) from None


class LazyGroup(SuggestingGroup):
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
