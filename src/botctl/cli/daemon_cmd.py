import typer

from botctl.cli import context, output

app = context.group()


@app.command("start")
def start(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1", "--host", envvar="BOTCTL_HOST", metavar="HOST", help="Edge address."
    ),
    port: int = typer.Option(8765, "--port", envvar="BOTCTL_PORT", metavar="PORT", help="Edge port."),
    foreground: bool = typer.Option(
        False, "--foreground", help="Stay in the foreground (systemd, containers)."
    ),
    ip_rate: float = typer.Option(
        20.0, "--ip-rate", metavar="N", help="Requests/s per client IP at the edge (0: off)."
    ),
    visitor_rate: float = typer.Option(
        5.0, "--visitor-rate", metavar="N", help="Action requests/s per visitor (0: off)."
    ),
    isolation: str = typer.Option(
        "auto",
        "--isolation",
        metavar="MODE",
        help="How the edge is kept from the keys: auto (as root: its own user + Landlock; "
        "otherwise Landlock where the kernel has it), uid, landlock, none.",
    ),
    edge_user: str = typer.Option(
        "botctl-edge",
        "--edge-user",
        metavar="USER",
        help="As root: the unprivileged user the edge runs as (created if missing).",
    ),
    no_edge: bool = typer.Option(
        False, "--no-edge", help="Run only the provider; the edge runs in its own unit or host."
    ),
    socket: str = typer.Option(
        None,
        "--socket",
        metavar="PATH",
        help="Where the provider listens (default: in the home; as root: /run/botctl/ID/provider.sock).",
    ),
    socket_group: str = typer.Option(
        None,
        "--socket-group",
        metavar="GROUP",
        help="A group that may connect to the provider's socket (the edge's), 0660.",
    ),
    trust_proxy: int = typer.Option(
        0,
        "--trust-proxy",
        metavar="N",
        help="N reverse proxies stand in front of the edge: the visitor's address is the "
        "Nth X-Forwarded-For entry from the right (rate limits and the audit use it).",
    ),
    trust_proxy_cidr: list[str] = typer.Option(
        None,
        "--trust-proxy-cidr",
        metavar="CIDR",
        help="Trust proxies in this network (repeatable): the visitor is the "
        "rightmost X-Forwarded-For entry outside them.",
    ),
    metrics_port: int = typer.Option(
        None,
        "--metrics-port",
        metavar="PORT",
        help="Serve /metrics on 127.0.0.1:PORT only (default: not served).",
    ),
    provider_listen: str = typer.Option(
        None,
        "--provider-listen",
        metavar="HOST:PORT",
        help="Also serve the provider on TCP with mutual TLS, for edges on other "
        "hosts (`botctl cluster cert issue provider` first).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Start the provider (Unix socket, holds the keys) and then the edge (HTTP, for visitors).

    The edge holds no secret and, by default, cannot reach one: started as root it runs as its own
    unprivileged user; otherwise it confines itself with Landlock. `botctl daemon status` says which.
    """
    from botctl import daemon

    output.use_json(json_out)
    home = context.home(ctx)
    opts = daemon.Options(
        host=host,
        port=port,
        ip_rate=ip_rate,
        visitor_rate=visitor_rate,
        isolation=isolation,
        edge_user=edge_user,
        edge=not no_edge,
        socket=socket,
        socket_group=socket_group,
        trust_proxy=trust_proxy,
        trust_proxy_cidrs=tuple(trust_proxy_cidr or ()),
        metrics_port=metrics_port,
        provider_listen=provider_listen,
    )
    if foreground:
        output.status(
            f"botctl daemon: edge on http://{host}:{port}, Ctrl-C to stop"
            if not no_edge
            else "botctl daemon: provider only, Ctrl-C to stop"
        )
    result = daemon.start(home, opts, foreground=foreground)
    if json_out:
        output.emit_json(result)
    elif result.get("already_running"):
        output.status(f"already running (pid {result['pid']}) on http://{result['host']}:{result['port']}")
    elif result.get("started"):
        iso = result.get("isolation") or {}
        edge = f"edge http://{host}:{port} (pid {result['edge_pid']}), " if not no_edge else ""
        output.status(
            f"started: {edge}provider pid {result['provider_pid']}; isolation {iso.get('mode')}; "
            "`botctl daemon status` for details"
        )
        if iso.get("mode") == "none":
            output.warn(iso.get("meaning", ""))
    if foreground and result.get("exit"):
        raise typer.Exit(result["exit"])


@app.command("stop")
def stop(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")
) -> None:
    """Stop gracefully: the edge finishes in-flight requests, then the provider commits and exits."""
    from botctl import daemon

    output.use_json(json_out)
    result = daemon.stop(context.home(ctx))
    if json_out:
        output.emit_json(result)
    else:
        output.status("stopped" if result["was_running"] else "not running")


@app.command("status")
def status(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
    cluster: bool = typer.Option(
        False,
        "--cluster",
        help="The nodes sharing this home's PostgreSQL database: alive or lapsed, version, last seen.",
    ),
) -> None:
    """Pid, address, uptime and restarts of the provider and the edge; connections needing re-auth."""
    from botctl import daemon

    output.use_json(json_out)
    if cluster:
        _cluster(ctx, json_out)
        return
    st = daemon.status(context.home(ctx))
    if json_out:
        output.emit_json(st)
        return
    if not st["running"]:
        output.status("not running" + (f" (last error: {st['last_error']})" if st.get("last_error") else ""))
        raise typer.Exit(3)
    p, e = st["provider"], st["edge"]
    iso = st.get("isolation") or {}
    who = f", edge user {iso['edge_user']}" if iso.get("edge_user") else ""
    abi = f", Landlock ABI {iso['landlock_abi']}" if iso.get("landlock_abi") else ""
    output.fields(
        [
            ("version", st["version"]),
            ("supervisor", f"pid {st['supervisor']['pid']}, up {st['supervisor']['uptime_s']}s"),
            (
                "provider",
                f"pid {p['pid']}, {p['socket']}"
                + (f" and https://{p['listen_tls']} (mutual TLS)" if p.get("listen_tls") else "")
                + f", up {p['uptime_s']}s, restarts {p['restarts']}"
                + ("" if p.get("reachable") else " (NOT REACHABLE)"),
            ),
            (
                "edge",
                "external (its own unit or host)"
                if e.get("external")
                else f"pid {e['pid']}, {e['address']}, up {e['uptime_s']}s, restarts {e['restarts']}",
            ),
            ("isolation", f"{iso.get('mode', 'unknown')}{who}{abi}"),
            *(
                [
                    (
                        "audit sinks",
                        ", ".join(f"{x['name']} (backlog {x.get('backlog')})" for x in st["audit_sinks"]),
                    )
                ]
                if st.get("audit_sinks")
                else []
            ),
            *(
                [
                    (
                        "alert webhooks",
                        ", ".join(f"{x['name']} ({x.get('pending')} pending)" for x in st["alert_webhooks"]),
                    )
                ]
                if st.get("alert_webhooks")
                else []
            ),
        ]
    )
    if iso.get("mode") == "none":
        output.warn(iso.get("meaning", ""))
    chain = st.get("audit_chain") or {}
    if chain.get("chain") == "broken":
        output.warn(
            f"the audit log is broken ({chain.get('problem')}): actions are refused until it is dealt with "
            "(botctl audit verify; then botctl audit seal-break --reason ...)"
        )
    for c in st.get("connections_needing_reauth") or []:
        output.warn(
            f"{c['connector']} in {c['workspace']} needs re-auth: botctl connect {c['connector']} -w {c['workspace']}"
        )
    from botctl.audit.reporting import shipping_warnings

    walked = chain.get("last_verify") or {}
    if walked and not walked.get("ok"):
        output.warn(
            f"the provider's last walk of the audit chain ({walked.get('at')}) found it broken at record "
            f"{walked.get('first_bad_seq')}: {walked.get('problem')} (botctl audit verify)"
        )
    for line in shipping_warnings(st.get("audit_sinks") or [], st.get("alert_webhooks") or []):
        output.warn(line)
    for e in (st.get("recent_alerts") or [])[-3:]:
        output.warn(f"in the last 24 h: {e['summary']}")


def _cluster(ctx: typer.Context, json_out: bool) -> None:
    from botctl import nodes, store
    from botctl.errors import UsageError

    home = context.home(ctx)
    if store.database_url(home) is None:
        raise UsageError(
            "this home keeps its tables in SQLite: it is one machine, not a cluster.",
            hint="Nodes share a PostgreSQL database: botctl init --database URL --node NAME.",
        )
    conn = store.open_vault(home, migrate_to_latest=False)
    try:
        listed = nodes.listing(conn) if store.schema_version(conn) >= 11 else []
    finally:
        conn.close()
    alive = sum(1 for n in listed if n["alive"])
    if json_out:
        output.emit_json({"nodes": listed, "alive": alive, "lapse_s": nodes.LAPSE_S})
        return
    output.table(
        ["node", "state", "version", "last seen", "pid", "host", "up since"],
        [
            [
                n["name"],
                "alive" if n["alive"] else "lapsed",
                n["version"],
                f"{n['last_seen_s_ago']}s ago",
                n["pid"],
                n["host"],
                n["started_at"],
            ]
            for n in listed
        ],
        empty="no node has run a provider on this database yet",
    )
    if not listed:
        return
    output.status(f"{alive} of {len(listed)} node(s) alive (lapsed: no heartbeat for {nodes.LAPSE_S:g}s)")


@app.command("logs")
def logs(
    ctx: typer.Context,
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new lines until Ctrl-C."),
    lines: int = typer.Option(50, "-n", "--lines", metavar="N", help="How many of the last lines."),
) -> None:
    """The daemon's log (supervisor, provider, edge)."""
    import sys
    import time

    from botctl.daemon import Paths

    path = Paths(context.home(ctx)).log
    if not path.exists():
        output.status("no daemon log yet")
        return
    with open(path, errors="replace") as fh:
        for line in fh.readlines()[-lines:]:
            sys.stdout.write(line)
        sys.stdout.flush()
        if not follow:
            return
        try:
            while True:
                line = fh.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            return
