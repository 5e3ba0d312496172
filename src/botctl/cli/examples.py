"""The EXAMPLES section of every command's --help (like gh's): a few real invocations, by command path.

Kept here rather than in each docstring so that they read alike and `tests/test_cli_conventions.py` can
hold every command to having some. A new command adds its lines here.
"""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "demo": (
        "botctl demo",
        "botctl demo --keep            # leave the daemon and sandbox running to explore",
    ),
    "init": (
        "botctl init",
        "BOTCTL_NO_KEYRING=1 botctl init --key-store file",
        "botctl init --database 'postgresql://botctl@db.internal:5432/botctl?passfile=/etc/botctl/pgpass' "
        "--node node-2   # join with the same master key",
    ),
    "apply": (
        "botctl apply -f botctl.toml --dry-run --json",
        "botctl apply -f botctl.toml --detailed-exitcode   # exit 2 when there are changes (drift check)",
        "botctl apply -f botctl.toml --prune --yes",
    ),
    "workspace": (
        "botctl workspace create acme --plan pro --origin https://shop.acme.test",
        "botctl workspace list",
    ),
    "workspace create": (
        "botctl workspace create acme --plan pro --origin https://shop.acme.test",
        'botctl workspace create beta --display-name "Beta Support" --json',
    ),
    "workspace list": (
        "botctl workspace list",
        "botctl workspace list --json",
        "botctl workspace list --header | cut -f1,2",
    ),
    "workspace show": ("botctl workspace show acme", "botctl workspace show acme --json"),
    "workspace set-plan": ("botctl workspace set-plan acme business",),
    "workspace set-origins": (
        "botctl workspace set-origins acme https://shop.acme.test https://www.acme.test",
        "botctl workspace set-origins acme      # none: the widget is embeddable nowhere",
    ),
    "workspace rotate-key": ("botctl workspace rotate-key acme",),
    "workspace delete": (
        "botctl workspace delete acme            # asks on a terminal",
        "botctl workspace delete acme --yes      # scripts: no terminal to ask",
    ),
    "workspace set-identity": (
        "botctl workspace set-identity acme --issuer https://shop.acme.test --max-lifetime 1h",
    ),
    "connectors": ("botctl connectors list", "botctl connectors show stripe"),
    "connectors list": ("botctl connectors list", "botctl connectors list --json"),
    "connectors show": ("botctl connectors show stripe", "botctl connectors show zendesk --json"),
    "connect": (
        "printf '%s\\n' \"$KEY\" | botctl connect stripe -w acme --api-key-stdin",
        "botctl connect zendesk -w acme --subdomain acme           # OAuth in the browser",
        "botctl connect hubspot -w acme --no-browser               # over SSH",
    ),
    "disconnect": (
        "botctl disconnect stripe -w acme          # asks on a terminal",
        "botctl disconnect stripe -w acme --yes",
    ),
    "connections": ("botctl connections list", "botctl connections test stripe -w acme"),
    "connections list": ("botctl connections list", "botctl connections list -w acme --json"),
    "connections test": ("botctl connections test stripe -w acme",),
    "connections refresh": ("botctl connections refresh zendesk -w acme",),
    "oauth-app": (
        "botctl oauth-app list",
        "botctl oauth-app set zendesk --client-id ID --client-secret-env ZD_SECRET",
    ),
    "oauth-app set": (
        "botctl oauth-app set zendesk --client-id botctl_acme --client-secret-env ZD_SECRET "
        "--redirect-port 8765",
        "botctl oauth-app set hubspot -w acme --client-id ID --client-secret-stdin < secret.txt",
    ),
    "oauth-app list": ("botctl oauth-app list", "botctl oauth-app list --json"),
    "oauth-app remove": ("botctl oauth-app remove zendesk", "botctl oauth-app remove hubspot -w acme"),
    "knowledge": (
        "botctl knowledge add -w acme examples/help-center/",
        'botctl knowledge ask -w acme "How long does shipping take?"',
    ),
    "knowledge add": (
        "botctl knowledge add -w acme examples/help-center/",
        "botctl knowledge add -w acme faq.md returns.html",
        "botctl knowledge add -w acme examples/help-center/ --url-base https://help.acme.test/articles",
    ),
    "knowledge feedback": (
        "botctl knowledge feedback -w acme          # the questions visitors voted down",
        "botctl knowledge feedback -w acme --all --json",
    ),
    "widget": ("botctl widget set -w acme --accent '#1f5f4a' --logo /logo.svg", "botctl widget show -w acme"),
    "widget show": ("botctl widget show -w acme", "botctl widget show -w acme --json"),
    "widget set": (
        "botctl widget set -w acme --accent '#1f5f4a' --logo /static/logo.svg",
        "botctl widget set -w acme --locale fr",
        "botctl widget set -w acme --support-contact 'Email help@acme.test; we answer within a day.'",
        "botctl widget set -w acme --clear logo",
    ),
    "knowledge list": ("botctl knowledge list -w acme", "botctl knowledge list -w acme --json"),
    "knowledge remove": ("botctl knowledge remove -w acme shipping.md",),
    "knowledge search": ('botctl knowledge search -w acme "refund"',),
    "knowledge ask": (
        'botctl knowledge ask -w acme "How long does standard shipping take?"',
        'botctl knowledge ask -w acme "Can I pay with goats?" --json',
    ),
    "actions": (
        "botctl actions list -w acme",
        "botctl actions run stripe.list_my_invoices -w acme --as-email ada@example.com",
    ),
    "actions list": ("botctl actions list", "botctl actions list -w acme --header"),
    "actions run": (
        "botctl actions run stripe.list_my_invoices -w acme --as-email ada@example.com",
        'botctl actions run shopify.get_my_order -w acme --as-email ada@example.com --params \'{"order_id": "1001"}\'',
    ),
    "mcp": ("botctl mcp serve -w acme --as-email ada@example.com --stdio",),
    "mcp serve": ("botctl mcp serve -w acme --as-email ada@example.com --stdio",),
    "mcp waive": ("botctl mcp waive -w acme zendesk.create_ticket", "botctl mcp waive -w acme --clear"),
    "identity": ("botctl identity rotate -w acme", "botctl identity list -w acme"),
    "identity rotate": (
        "botctl identity rotate -w acme",
        "botctl identity rotate -w acme --overlap 1h --json",
    ),
    "identity add-key": (
        "botctl identity add-key -w acme --public-key site.pub.pem --alg ES256",
        "botctl identity add-key -w acme --jwks-url https://shop.acme.test/.well-known/jwks.json --alg RS256",
    ),
    "identity list": ("botctl identity list -w acme", "botctl identity list -w acme --json"),
    "identity rules": (
        "botctl identity rules -w acme",
        "botctl identity rules -w acme --issuer https://shop.acme.test --max-lifetime 15m --jti-replay",
    ),
    "identity remove": ("botctl identity remove -w acme site-2026",),
    "identity mint": ("TOKEN=$(botctl identity mint -w acme --sub u-ada --email ada@example.com)",),
    "daemon": ("botctl daemon start", "botctl daemon status"),
    "daemon start": (
        "botctl daemon start",
        "BOTCTL_PORT=9000 botctl daemon start --metrics-port 9100",
        "botctl daemon start --foreground --no-edge --socket /run/botctl/provider.sock",
        "botctl daemon start --provider-listen 10.0.0.5:8766   # edges on other hosts, mutual TLS",
    ),
    "cluster": ("botctl cluster ca init", "botctl cluster cert issue edge-1"),
    "cluster ca": ("botctl cluster ca init",),
    "cluster ca init": ("botctl cluster ca init", "botctl cluster ca init --json"),
    "cluster cert": ("botctl cluster cert issue provider", "botctl cluster cert issue edge-1 --days 7"),
    "cluster cert issue": (
        "botctl cluster cert issue provider",
        "botctl cluster cert issue edge-1 --days 7 --out ./edge-1   # then copy to the edge host",
    ),
    "cluster cert revoke": ("botctl cluster cert revoke edge-1",),
    "cluster cert list": ("botctl cluster cert list", "botctl cluster cert list --json"),
    "edge": (
        "botctl edge start --provider https://10.0.0.5:8766 --cert edge-1.crt --key edge-1.key --ca ca.crt",
    ),
    "edge start": (
        "botctl edge start --provider https://10.0.0.5:8766 --cert edge-1.crt --key edge-1.key --ca ca.crt",
        "botctl edge start --provider https://10.0.0.5:8766 --cert e.crt --key e.key --ca ca.crt --port 80",
    ),
    "daemon stop": ("botctl daemon stop",),
    "daemon status": (
        "botctl daemon status",
        "botctl daemon status --json",
        "botctl daemon status --cluster   # nodes on the shared PostgreSQL: alive or lapsed",
    ),
    "daemon logs": ("botctl daemon logs -n 100", "botctl daemon logs -f"),
    "vault": ("botctl vault status", "botctl vault rotate-master-key --yes"),
    "vault status": ("botctl vault status", "botctl vault status --json"),
    "vault rotate-master-key": (
        "botctl vault rotate-master-key             # asks on a terminal",
        "botctl vault rotate-master-key --yes",
        "botctl vault rotate-master-key --new-key-file /etc/botctl/master.key.new",
    ),
    "db": ("botctl db copy --to postgresql://botctl@127.0.0.1/botctl --switch",),
    "db copy": (
        "botctl db copy --to postgresql://botctl@127.0.0.1/botctl --switch",
        "botctl db copy --to sqlite:/backups/botctl",
    ),
    "audit": (
        "botctl audit",
        "botctl audit -w acme --since 2h --outcome denied",
        "botctl audit --request-id req_3fK9x2LmQ7",
        "botctl audit -f --json",
    ),
    "audit show": ("botctl audit show 1", "botctl audit show 1 --json"),
    "audit verify": ("botctl audit verify", "botctl audit verify --anchor ~/botctl-anchors.jsonl"),
    "audit seal-break": ('botctl audit seal-break --reason "restored audit.db from last night\'s backup"',),
    "audit anchor": ("botctl audit anchor --out ~/botctl-anchors.jsonl", "botctl audit anchor --public-key"),
    "audit export": (
        "botctl audit export --since 1d > audit-today.ndjson",
        "botctl audit export --since 2026-11-01 --until 2026-12-01 --checkpoint",
    ),
    "audit export-key": ("botctl audit export-key --out audit-mac.key",),
    "audit sink": ("botctl audit sink add file /var/log/botctl-audit.ndjson", "botctl audit sink list"),
    "audit sink add": (
        "botctl audit sink add file /var/log/botctl-audit.ndjson",
        "botctl audit sink add syslog --server logs.internal:514 --protocol tcp",
        "botctl audit sink add webhook https://siem.example/botctl --secret-env SIEM_SECRET",
    ),
    "audit sink list": ("botctl audit sink list", "botctl audit sink list --json"),
    "audit sink remove": ("botctl audit sink remove file-1",),
    "audit sink flush": ("botctl audit sink flush",),
    "console": ("botctl console", "botctl console --no-browser"),
    "alert": ("botctl alert add https://hooks.example/botctl --secret-env ALERT_SECRET", "botctl alert list"),
    "alert add": ("botctl alert add https://hooks.example/botctl --secret-env ALERT_SECRET",),
    "alert list": ("botctl alert list", "botctl alert list --json"),
    "alert remove": ("botctl alert remove webhook-1",),
    "alert test": ("botctl alert test",),
    "alert flush": ("botctl alert flush",),
    "completions": (
        "botctl completions bash > ~/.local/share/bash-completion/completions/botctl",
        'botctl completions zsh > "${fpath[1]}/_botctl"',
    ),
    "doctor": ("botctl doctor", "botctl doctor --strict --json     # CI: warnings fail too"),
    "sandbox": ("botctl sandbox serve &",),
    "sandbox serve": ("botctl sandbox serve &", "botctl sandbox serve --port 8791 --access-log"),
}


def epilog(path: str) -> str | None:
    """`path` is the command path without `botctl` ("workspace create"); click keeps \\b paragraphs as typed."""
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
