"""`botctl knowledge`: a workspace's documents, and the answers the bot gives from them.

Exit codes: 0 ok (also when `ask` does not know: see "grounded"), 2 a path that cannot be added
(missing, unsupported type, empty, too large, not text, not a regular file, a symbolic link without
--follow-symlinks; nothing is added), 3 unknown workspace or document.
"""

import typer

from botctl.cli import context, output

app = context.group(help="A workspace's documents (Markdown, text, HTML) and the answers given from them.")
WS = typer.Option(
    ...,
    "-w",
    "--workspace",
    envvar="BOTCTL_WORKSPACE",
    metavar="NAME",
    autocompletion=context.complete_workspace,
    help="Workspace.",
)
JSON = typer.Option(False, "--json", help="Print as JSON.")


def _readonly(ctx: typer.Context, workspace: str):  # -> (Vault, Workspace)
    from botctl import workspaces
    from botctl.errors import NotFound
    from botctl.vault import Vault

    vault = Vault.open_readonly(context.home(ctx))
    if vault is None:
        raise NotFound(
            f"no workspace named {workspace!r}.",
            hint="See `botctl workspace list`.",
            code="unknown_workspace",
        )
    ctx.call_on_close(vault.close)
    return vault, workspaces.get(vault.conn, workspace)


@app.command("add")
def add(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(
        ..., metavar="PATH...", help="Files or folders (searched recursively)."
    ),
    workspace: str = WS,
    follow_symlinks: bool = typer.Option(
        False,
        "--follow-symlinks",
        help="Follow symbolic links (named, or met in a folder) instead of refusing them.",
    ),
    url_base: str = typer.Option(
        None,
        "--url-base",
        metavar="URL",
        help="Your help center's address: sources link to URL/<document name without "
        "extension> (a Markdown file's `url:` front matter wins).",
    ),
    json_out: bool = JSON,
) -> None:
    """Add or update documents. A changed file replaces its previous version; an unchanged one is skipped.

    Everything added is published to the workspace's visitors, so symbolic links are refused (a named
    path that is one, or one met in a folder: nothing is added) unless --follow-symlinks is given.
    Visitors see each source by its title, linked to its help-center page when --url-base or a
    document's `url:` front matter gives one.
    """
    from botctl import knowledge, workspaces

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    try:
        report = knowledge.add(a, ws, paths, follow_symlinks=follow_symlinks, url_base=url_base)
    except knowledge.DocumentError as exc:
        if exc.code == "symlink_refused":
            exc.hint = (
                "Pass --follow-symlinks if you trust where it points (its target is published to "
                "visitors), or copy the document in place of the link."
            )
        raise
    if json_out:
        output.emit_json(report.as_dict())
        return
    for s in report.skipped:
        output.warn(f"skipped {s['path']}: {s['reason']}")
    embedded = f", {report.embedded} embedded" if report.embedded else ""
    output.status(
        f"{ws.name}: {len(report.added)} added, {len(report.replaced)} replaced, "
        f"{len(report.unchanged)} unchanged ({report.chunks} passages indexed{embedded})"
    )


@app.command("list")
def list_(ctx: typer.Context, workspace: str = WS, json_out: bool = JSON) -> None:
    """The workspace's documents."""
    from botctl import knowledge

    output.use_json(json_out)
    vault, ws = _readonly(ctx, workspace)
    docs = knowledge.list_docs(vault.conn, ws)
    if json_out:
        output.emit_json([d.as_dict() for d in docs])
        return
    output.table(
        ["DOCUMENT", "TITLE", "KIND", "PASSAGES", "WORDS", "UPDATED"],
        [(d.name, d.title, d.kind, d.chunks, d.words, d.updated_at[:19]) for d in docs],
        empty=f"no documents; add some with `botctl knowledge add -w {ws.name} PATH`",
    )


@app.command("remove")
def remove(
    ctx: typer.Context,
    workspace: str = WS,
    document: str = typer.Argument(
        ..., metavar="DOC", autocompletion=context.complete_document, help="As `list` shows it."
    ),
) -> None:
    """Remove a document and its passages."""
    from botctl import knowledge, workspaces

    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    doc = knowledge.remove(a, ws, document)
    output.status(f"{ws.name}: removed {doc.name} ({doc.chunks} passages)")


@app.command("search")
def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., metavar="QUERY"),
    workspace: str = WS,
    limit: int = typer.Option(5, "-n", "--limit", min=1, max=50, help="At most this many passages."),
    json_out: bool = JSON,
) -> None:
    """The passages that best match QUERY, best first."""
    from botctl import knowledge

    output.use_json(json_out)
    vault, ws = _readonly(ctx, workspace)
    passages = knowledge.search(vault.conn, ws, query, limit)
    if json_out:
        output.emit_json([p.as_dict() for p in passages])
        return
    output.table(
        ["SCORE", "DOCUMENT", "SECTION", "EXCERPT"],
        [(f"{p.score:.2f}", p.document, p.section, p.excerpt) for p in passages],
        empty="no matching passages",
    )


@app.command("ask")
def ask(
    ctx: typer.Context,
    question: str = typer.Argument(..., metavar="QUESTION"),
    workspace: str = WS,
    json_out: bool = typer.Option(False, "--json", help='Print {"answer", "grounded", "citations"} as JSON.'),
    explain: bool = typer.Option(
        False,
        "--explain",
        help="Also show why: words read as typos, the FTS5 and dense rankings, the fused scores "
        'and the threshold decision (with --json: an "explain" object).',
    ),
) -> None:
    """Answer QUESTION as the bot would: only from the documents, citing them, or say it does not know."""
    from botctl import knowledge

    output.use_json(json_out)
    vault, ws = _readonly(ctx, workspace)
    if explain:
        got = knowledge.explain(vault.conn, ws, question)
        result, decision = got["result"], got["decision"]
    else:
        result, decision = knowledge.answer(vault.conn, ws, question), None
    if json_out:
        out = {k: result[k] for k in ("answer", "grounded", "citations")}
        if decision is not None:
            out["explain"] = decision
        output.emit_json(out)
        return
    print(result["answer"])
    if result["citations"]:
        print()
        print("Sources:")
        for i, c in enumerate(result["citations"], 1):
            print(f"  [{i}] {c['document']} — {c['section']}")
    if decision is not None:
        _print_explain(decision)


def _print_explain(d: dict) -> None:
    print()
    mode = f"hybrid: FTS5 + {d['model']}" if d["dense"] else "FTS5 only"
    print(f"Retrieval: {mode}" + (f" ({d['note']})" if d.get("note") else ""))
    if d.get("corrected"):
        read = ", ".join(f"{w!r} as {c!r}" for w, c in d["corrected"].items())
        print(f"Read (words the documents do not use, one letter from words they do): {read}")
    if d["dense"]:
        print(
            f"Fused score = cosine (best sentence) + {d['heading_weight']} x heading + "
            f"{d['coverage_weight']} x coverage + {d['strength_weight']} x min(strength, 1.5); "
            f"grounded at >= {d['threshold']}."
        )
    print(f"Decision: {'grounded' if d['grounded'] else 'not grounded'} — {d['reason']}")
    rows = d.get("ranking") or []
    if not rows:
        return
    print()

    def rank(x: int | None) -> str:
        return "-" if x is None else str(x)

    head = ("FUSED", "FTS5#", "BM25", "COVER", "STRENGTH", "DENSE#", "COSINE", "HEADING", "PASSAGE")
    print("  ".join(f"{h:>8}" for h in head[:-1]) + "  " + head[-1])
    for r in rows[:10]:
        cells = (
            f"{r['fused']:.3f}" if d["dense"] else "-",
            rank(r["fts_rank"]),
            f"{r['bm25']:.2f}",
            f"{r['coverage']:.2f}",
            f"{r['strength']:.2f}",
            rank(r["dense_rank"]),
            f"{r['cosine']:.3f}" if d["dense"] else "-",
            f"{r['heading']:.3f}" if d["dense"] else "-",
        )
        print("  ".join(f"{c:>8}" for c in cells) + f"  {r['document']} — {r['section']}")


@app.command("feedback")
def feedback(
    ctx: typer.Context,
    workspace: str = WS,
    all_: bool = typer.Option(False, "--all", help="Also questions that only got thumbs up."),
    limit: int = typer.Option(100, "-n", "--limit", min=1, max=10000, help="At most this many questions."),
    json_out: bool = JSON,
) -> None:
    """Questions visitors voted down in the widget, the most down-voted first: what the documents miss.

    Each row is a question as a visitor asked it, its thumbs down and up, and whether the bot had an
    answer from the documents (GROUNDED no: it said it did not know). Votes carry no personal data
    beyond the workspace's own visitor id.
    """
    from botctl import feedback as fb

    output.use_json(json_out)
    vault, ws = _readonly(ctx, workspace)
    rows = fb.summary(vault.conn, ws, include_up=all_, limit=limit)
    if json_out:
        output.emit_json([r.as_dict() for r in rows])
        return
    output.table(
        ["DOWN", "UP", "GROUNDED", "LAST VOTE", "QUESTION"],
        [
            (r.down, r.up, "yes" if r.grounded else "no", r.last_vote_at[:19].replace("T", " "), r.question)
            for r in rows
        ],
        empty="no down-voted questions" + ("" if all_ else " (--all shows every vote)"),
    )
