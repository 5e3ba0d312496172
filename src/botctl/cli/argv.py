"""Global options wherever they are typed: `botctl workspace list -q --home X` = `botctl -q --home X workspace list`
(and `botctl --json workspace list` = `botctl workspace list --json`).

Standard library only (this runs on every start-up, every TAB press). Options after a `--` are left alone,
and so is an option the subcommand defines itself (`sandbox serve -q`).
"""

from __future__ import annotations

FLAGS = {"-q", "--quiet", "--debug", "--header"}  # global flags without a value
VALUED = {"--home"}  # global options with a value
OWN = {("sandbox", "serve"): {"-q", "--quiet"}}  # subcommands whose own option has the same spelling


def hoist(args: list[str]) -> list[str]:
    """`args` with the global options found after the subcommand moved in front of it."""
    if not args or args[0].startswith("-"):
        head_end = _first_positional(args)
        if head_end is None:
            return args
    else:
        head_end = 0
    head, rest = args[:head_end], args[head_end:]
    if "--json" in head:  # `botctl --json workspace list`: --json belongs to the command, so it goes after it
        head = [a for a in head if a != "--json"]
        cut = rest.index("--") if "--" in rest else len(rest)
        rest = rest[:cut] + ["--json"] + rest[cut:]
    own = OWN.get(tuple(rest[:2]), set())
    moved: list[str] = []
    kept: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            kept += rest[i:]
            break
        name = arg.split("=", 1)[0]
        if arg in FLAGS and arg not in own:
            moved.append(arg)
        elif name in VALUED and arg not in own:
            if "=" in arg:
                moved.append(arg)
            elif i + 1 < len(rest):
                moved += [arg, rest[i + 1]]
                i += 1
            else:
                kept.append(arg)  # `--home` with nothing after it: let the parser say so
        else:
            kept.append(arg)
        i += 1
    return head + moved + kept


def _first_positional(args: list[str]) -> int | None:
    """Where the subcommand starts, after the global options given in front of it."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in VALUED:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return i
    return None
