import functools
import inspect

import typer

from botctl.cli import context, output
from botctl.connectors import registry  # import-light: no HTTP library

app = context.group(no_args_is_help=True)

WS = typer.Option(
    ...,
    "-w",
    "--workspace",
    envvar="BOTCTL_WORKSPACE",
    metavar="NAME",
    autocompletion=context.complete_workspace,
    help="Workspace.",
)


def _aliases() -> dict[str, tuple[str, str, str]]:
    """Alias flag -> (setting name, metavar, help), from the settings the connectors declare with an alias."""
    found: dict[str, tuple[str, str, list[str]]] = {}
    for c in registry.all_connectors():
        for f in c.config:
            if f.alias:
                name, metavar, helps = found.setdefault(f.alias, (f.name, f.metavar, []))
                if name != f.name:
                    raise ValueError(f"{f.alias} names two settings: {name} and {f.name}")
                helps.append(f"{c.vendor}: {f.help}.")
    return {
        flag: (name, metavar, " ".join(helps) + f" (= --config {name}=...)")
        for flag, (name, metavar, helps) in found.items()
    }


ALIASES = _aliases()
# The connectors whose API key comes with a secret (their names, for the help text).
WITH_SECRET = ", ".join(c.vendor for c in registry.all_connectors() if "api_secret" in c.key_fields) or "none"


def _alias_param(flag: str) -> str:
    return "setting_" + flag.lstrip("-").replace("-", "_")


def _flag(name: str) -> str:
    """How the command line spells a setting: its alias flag, else --config NAME=VALUE."""
    return next((flag for flag, (n, _, _) in ALIASES.items() if n == name), f"--config {name}=VALUE")


def _settings_from_registry(func):
    """One option per alias flag the connectors declare (their values reach `func` in **aliases, by
    setting name), and the library's neutral settings errors worded with the flags."""
    from botctl.errors import UsageError

    @functools.wraps(func)
    def wrapper(**kwargs):
        aliases = {ALIASES[flag][0]: kwargs.pop(_alias_param(flag), None) for flag in ALIASES}
        from botctl.connections import SettingsError

        try:
            return func(**kwargs, **aliases)
        except SettingsError as exc:
            message, hint = exc.worded(_flag, _flag)
            raise UsageError(message, hint=hint, code=exc.code) from None

    params = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(func).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    extra = [
        inspect.Parameter(
            _alias_param(flag),
            inspect.Parameter.KEYWORD_ONLY,
            annotation=str,
            default=typer.Option(None, flag, metavar=metavar, help=help_text),
        )
        for flag, (_, metavar, help_text) in ALIASES.items()
    ]
    after = [p.name for p in params].index("settings") + 1
    wrapper.__signature__ = inspect.Signature(params[:after] + extra + params[after:])
    return wrapper


@app.command("connect")
@_settings_from_registry
def connect(
    ctx: typer.Context,
    connector_name: str = typer.Argument(
        ...,
        metavar="CONNECTOR",
        autocompletion=context.complete_connector,
        help="e.g. stripe, zendesk (see `botctl connectors list`).",
    ),
    workspace: str = WS,
    settings: list[str] = typer.Option(
        None,
        "--config",
        metavar="NAME=VALUE",
        help="A setting of the connector (`botctl connectors show NAME` lists them); repeatable.",
    ),
    api_key_stdin: bool = typer.Option(
        False, "--api-key-stdin", help="Read the API key from standard input."
    ),
    api_key_env: str = typer.Option(None, "--api-key-env", metavar="VAR", help="Read the API key from $VAR."),
    api_secret_stdin: bool = typer.Option(
        False, "--api-secret-stdin", help=f"{WITH_SECRET}: read the key's secret from stdin."
    ),
    api_secret_env: str = typer.Option(
        None, "--api-secret-env", metavar="VAR", help=f"{WITH_SECRET}: the key's secret from $VAR."
    ),
    token_stdin: bool = typer.Option(
        False, "--access-token-stdin", help="OAuth tools: a vendor-issued access token from stdin."
    ),
    token_env: str = typer.Option(
        None, "--access-token-env", metavar="VAR", help="OAuth tools: access token from $VAR."
    ),
    sandbox: str = typer.Option(
        None,
        "--sandbox",
        metavar="URL",
        envvar="BOTCTL_SANDBOX",
        help="Point the connection at a running `botctl sandbox serve` instead of the vendor.",
    ),
    device: bool = typer.Option(
        False, "--device", help="OAuth: use the device flow (a code to enter elsewhere)."
    ),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="OAuth: print the URL instead of opening a browser."
    ),
    paste: bool = typer.Option(
        False, "--paste", help="OAuth: the browser is on another machine; paste its final address back here."
    ),
    redirect_port: int = typer.Option(
        None,
        "--redirect-port",
        metavar="N",
        help="OAuth: listen on this fixed port (for vendors that match redirects exactly).",
    ),
    timeout: float = typer.Option(
        300.0, "--timeout", metavar="SECONDS", help="OAuth: how long to wait for approval."
    ),
    skip_check: bool = typer.Option(
        False, "--skip-check", help="OAuth: store the token without the vendor's account check."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the connection as JSON."),
    **aliases: str | None,
) -> None:
    """Connect a tool to a workspace: the credential is checked with the vendor, then stored encrypted.

    Settings (a tenant, a site URL) come from --config NAME=VALUE or their alias flags.
    The secret never comes from an argument: a hidden prompt, --api-key-stdin, or --api-key-env VAR.
    OAuth tools (Calendly, Zendesk, HubSpot, Shopify) open the browser by default (authorization code
    + PKCE, redirect to 127.0.0.1); --no-browser, --paste and --device are for SSH and headless use.
    Exit 24 denied, 25 the redirect failed a security check, 26 timed out (see README "Exit codes").
    """
    import asyncio

    from botctl import connections, workspaces
    from botctl.cli import secrets_input
    from botctl.connectors.base import ActionError
    from botctl.errors import UsageError

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    connector = connections.resolve_connector(connector_name)
    if connector.auth == "oauth" and (api_key_stdin or api_key_env):
        raise UsageError(
            f"{connector.vendor} connects with OAuth, not an API key.",
            hint="Pass an access token the vendor issued (e.g. a personal or private-app token) with "
            "--access-token-stdin or --access-token-env VAR.",
        )
    config = connections.resolve_config(connector, _given(settings, aliases), sandbox)
    secrets_input.reset()
    if connector.auth == "api_key":
        if token_stdin or token_env:
            raise UsageError(
                f"{connector.vendor} connects with an API key, not an access token.",
                hint="Use --api-key-stdin or --api-key-env VAR.",
            )
        credential = {
            "api_key": secrets_input.read(
                f"{connector.vendor} API key", flag="--api-key", from_stdin=api_key_stdin, env_var=api_key_env
            )
        }
        if "api_secret" in connector.key_fields:
            credential["api_secret"] = secrets_input.read(
                f"{connector.vendor} consumer secret",
                flag="--api-secret",
                from_stdin=api_secret_stdin or (api_key_stdin and not api_secret_env),
                env_var=api_secret_env,
                stdin_index=1 if api_key_stdin else 0,
            )
        elif api_secret_stdin or api_secret_env:
            raise UsageError(f"{connector.vendor} takes no API secret.")
    else:
        if not (token_stdin or token_env):
            _connect_oauth(
                a,
                ws,
                connector,
                config,
                sandbox=sandbox,
                device=device,
                no_browser=no_browser,
                paste=paste,
                redirect_port=redirect_port,
                timeout=timeout,
                skip_check=skip_check,
                json_out=json_out,
            )
            return
        credential = {
            "access_token": secrets_input.read(
                f"{connector.vendor} access token",
                flag="--access-token",
                from_stdin=token_stdin,
                env_var=token_env,
            )
        }
    try:
        label = asyncio.run(connections.validate(connector, config, credential))
    except ActionError as exc:
        err = connections.error_for(exc, connector.vendor, given=True)
        a.audit(
            "connection.failed",
            workspace=ws.name,
            connector=connector.name,
            outcome="denied" if err.exit_code != 22 else "error",
            reason=err.code,
            detail={"upstream_status": exc.upstream_status, "message": exc.message},
        )
        raise err from None
    conn, replaced = connections.save(
        a, ws, connector, auth=connector.auth, config=config, credential=credential, account_label=label
    )
    if json_out:
        output.emit_json(conn.as_dict())
    else:
        verb = "reconnected" if replaced else "connected"
        output.status(
            f"{verb} {connector.name} in {ws.name} as {label!r}"
            + (f" (sandbox {config['sandbox']})" if config.get("sandbox") else "")
        )


def _given(settings: list[str] | None, aliases: dict[str, str | None]) -> dict[str, str]:
    """--config NAME=VALUE items and alias flags, as one {setting: value}; a setting given twice with
    two values is refused."""
    from botctl.errors import UsageError

    given = {name: value for name, value in aliases.items() if value}
    for item in settings or ():
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise UsageError(
                f"--config takes NAME=VALUE, not {item!r}.",
                hint="e.g. --config subdomain=acme (`botctl connectors show NAME` lists the settings).",
            )
        if given.get(name, value) != value:
            raise UsageError(f"the setting {name} is given twice, with two values.")
        given[name] = value
    return given


@app.command("disconnect")
def disconnect(
    ctx: typer.Context,
    connector_name: str = typer.Argument(..., metavar="CONNECTOR", autocompletion=context.complete_connector),
    workspace: str = WS,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (needed without a terminal)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Revoke the credential at the vendor where it can be revoked, then delete it here (even if revocation failed)."""
    import asyncio

    from botctl import connections, workspaces

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    connector = connections.resolve_connector(connector_name)
    conn = connections.get(a.vault.conn, ws, connector.name)
    context.confirm(
        f"Revoke and delete the {connector.name} credential of {ws.name}?",
        yes=yes,
        command=f"botctl disconnect {connector.name} -w {ws.name}",
    )
    from botctl import oauth

    revoked = asyncio.run(oauth.revoke(a, ws, conn, connector))["revoked"]
    connections.delete(a, ws, conn, detail={"revoked": revoked})
    result = {"workspace": ws.name, "connector": connector.name, "deleted": True, "revoked": revoked}
    if json_out:
        output.emit_json(result)
        return
    output.status(f"disconnected {connector.name} from {ws.name}; the stored credential is deleted")
    if revoked.startswith("failed"):
        output.warn(
            f"revoking at {connector.vendor} failed ({revoked[8:]}); revoke it in the vendor's admin too"
        )
    elif revoked == "unsupported":
        output.status(
            f"{connector.vendor} has no revocation endpoint for this credential: revoke it in the vendor's admin"
        )


def _connect_oauth(
    a,
    ws,
    connector,
    config,
    *,
    sandbox,
    device,
    no_browser,
    paste,
    redirect_port,
    timeout,
    skip_check,
    json_out,
) -> None:
    import asyncio

    from botctl import oauth
    from botctl.errors import UsageError

    modes = [m for m, on in (("device", device), ("paste", paste), ("no_browser", no_browser)) if on]
    if len(modes) > 1:
        raise UsageError("choose one of --device, --paste and --no-browser.")
    if timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds.")

    async def run():
        app_cfg = await oauth.app_for(a, ws, connector, config, sandbox=sandbox, redirect_port=redirect_port)
        return await oauth.connect(
            a,
            ws,
            connector,
            config,
            app_cfg,
            mode=modes[0] if modes else "auto",
            ui=_terminal_ui(),
            timeout=timeout,
            skip_check=skip_check,
        )

    result = asyncio.run(run())
    for w in result.warnings:
        output.warn(w)
    conn = result.connection
    if json_out:
        output.emit_json(conn.as_dict())
        return
    verb = "reconnected" if result.replaced else "connected"
    who = f" as {conn.account_label!r}" if conn.account_label else ""
    output.status(
        f"{verb} {connector.name} in {ws.name}{who} (OAuth, {result.flow.replace('_', '-')} flow"
        + (f", sandbox {config['sandbox']}" if config.get("sandbox") else "")
        + ")"
    )


def _terminal_ui():
    """The OAuth flows' terminal side: URLs and codes on stderr, a spinner while waiting (TTY only)."""
    import contextlib
    import sys

    from botctl import oauth

    class TerminalUI(oauth.FlowUI):
        def show_url(self, url, *, opened, mode):
            if mode == "paste":
                output.status("Open this URL in a browser on any machine and approve botctl:")
                output.status(f"  {url}")
                output.status(
                    "The browser then goes to a 127.0.0.1 address that will not load there: that is "
                    "expected. Copy that whole address from the address bar and paste it here."
                )
            elif opened:
                output.status(f"Opened your browser to authorize botctl. If it did not open, visit:\n  {url}")
            else:
                output.status(f"Open this URL in a browser on this machine to authorize botctl:\n  {url}")
            sys.stderr.flush()

        def show_device_code(self, user_code, verification_uri, complete_uri):
            output.status(f"To authorize botctl, visit {verification_uri} and enter the code: {user_code}")
            if complete_uri:
                output.status(f"  (or open {complete_uri})")
            sys.stderr.flush()

        def waiting(self, message):
            if not sys.stderr.isatty():
                return contextlib.nullcontext()
            from rich.console import Console

            return Console(stderr=True, markup=False, highlight=False, emoji=False).status(message)

        def read_pasted(self, redirect_uri):
            if sys.stdin.isatty():
                sys.stderr.write("Paste the address: ")
                sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                from botctl.errors import UsageError

                raise UsageError("nothing was pasted (end of input).", hint="Run the command again.")
            return line

        def info(self, message):
            output.status(message)

    return TerminalUI()
