"""Reading the file's shape: where a key is (FILE:LINE), and `Checker`, which collects every problem
in the file's own words -- a library error that speaks a command-line flag names the TOML key instead."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from botctl.errors import BotctlError
from botctl.provision.envvars import ENV_NAME, NOT_A_NAME, RESERVED, EnvRef, Path_, reserved_env
from botctl.provision.hosts import HostUse, host_use

_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


def dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + p)
    return out


def _split_key(text: str) -> list[str]:
    return [
        p.strip().strip("\"'") for p in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', text.strip()) if p.strip()
    ]


def _is_table_array(text: str, path: list) -> bool:
    name = ".".join(str(p) for p in path)
    return bool(re.search(r"^\s*\[\[\s*" + re.escape(name) + r"\s*\]\]", text, re.M))


def _line_key(line: str, current: tuple, counts: dict[tuple, int]) -> tuple[tuple | None, tuple]:
    """The full key a (comment-stripped) line sets or opens, and the table it leaves current."""
    m = re.match(r"^(\[\[?)\s*([^\]]+?)\s*\]\]?$", line)
    if m:
        header = tuple(_split_key(m.group(2)))
        if m.group(1) == "[[":
            counts[header] = counts.get(header, 0) + 1
            header = header + (counts[header] - 1,)
        return header, header
    if "=" in line:
        return current + tuple(_split_key(line.split("=", 1)[0])), current
    return None, current


def locate(text: str, path: Path_) -> int:
    """The line (1-based) where `path` is set, found by scanning the TOML text (approximate: falls back
    to the closest enclosing table or key)."""
    want = list(path)
    while want and isinstance(want[-1], int) and len(want) > 1 and not _is_table_array(text, want[:-1]):
        want.pop()  # an index into a plain array: the key's line
    target = tuple(want)
    current: tuple = ()
    counts: dict[tuple, int] = {}
    best, best_len = 1, -1
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith(("'", '"')) else raw.strip()
        if not line:
            continue
        full, current = _line_key(line, current, counts)
        if full is None:
            continue
        if full == target:
            return n
        if len(full) <= len(target) and target[: len(full)] == full and len(full) > best_len:
            best, best_len = n, len(full)
    return best


def type_name(v: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(v), type(v).__name__)


def in_file_words(exc: BotctlError, words: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """A library error as the file's reader should see it, naming keys of the file (`words`: key -> the
    word the reader knows it by, the key itself or e.g. BOTCTL_SANDBOX). An error that can word its
    settings again (`worded(word, listed)`, with `fields`) is asked to; otherwise each `--flag` whose key
    (`flag_name`) is in `words` becomes that word. A hint that still speaks a flag is dropped. Returns
    (message, hint, the first key of the file named)."""
    named: list[str] = []
    worded = getattr(exc, "worded", None)
    if callable(worded):
        fields = [f for f in getattr(exc, "fields", ()) if words.get(f) == f]
        named += fields
        message, hint = worded(lambda f: words.get(f, f), lambda f: words.get(f, f))
    else:
        message, hint = exc.message, exc.hint

    def swap(m: re.Match[str]) -> str:
        key = m.group(1).replace("-", "_")
        if key not in words:
            return m.group(0)
        if words[key] == key:
            named.append(key)
        return words[key]

    message = _FLAG.sub(swap, message)
    hint = _FLAG.sub(swap, hint) if hint else None
    if hint is not None and _FLAG.search(hint):
        hint = None
    return message, hint, (named[0] if named else None)


class Checker:
    """Walks the parsed file: type checks, problems as `FILE:LINE: key.path: message`, the `*_env`
    references to read later and the hosts credentials would go to."""

    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.text = text
        self.problems: list[str] = []
        self.refs: list[EnvRef] = []
        self.hosts: list[HostUse] = []

    def where(self, path: Path_) -> str:
        return f"{self.file}:{locate(self.text, path)}: {dotted(path)}"

    def err(self, path: Path_, message: str) -> None:
        self.problems.append(f"{self.where(path)}: {message}")

    def host(self, url: str, path: Path_ | None, *, where: str | None = None) -> None:
        use = host_use(url, where or self.where(path or ()))
        if use is not None and use not in self.hosts:
            self.hosts.append(use)

    def table(self, value: Any, path: Path_, allowed: set[str] | None) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.err(path, f"must be a table, not {type_name(value)}.")
            return None
        if allowed is not None:
            for k in sorted(set(value) - allowed):
                self.err(path + (k,), f"unknown key (allowed here: {', '.join(sorted(allowed))}).")
        return value

    def str_(self, t: dict, key: str, path: Path_, *, required: bool = False) -> str | None:
        if key not in t:
            if required:
                self.err(path + (key,), "is required.")
            return None
        v = t[key]
        if not isinstance(v, str):
            self.err(path + (key,), f"must be a string, not {type_name(v)}.")
            return None
        return v

    def str_list(self, t: dict, key: str, path: Path_) -> list[str] | None:
        if key not in t:
            return None
        v = t[key]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.err(path + (key,), "must be a list of strings.")
            return None
        return v

    def env(self, t: dict, key: str, path: Path_) -> EnvRef | None:
        var = self.str_(t, key, path)
        if var is None:
            return None
        if not ENV_NAME.fullmatch(var):  # refused earlier by literal_secrets; never echoed
            self.err(path + (key,), NOT_A_NAME)
            return None
        if reserved_env(var):
            self.err(path + (key,), RESERVED.format(var=var))
            return None
        ref = EnvRef(var, path + (key,))
        self.refs.append(ref)
        return ref

    def read_env(self) -> None:
        """Read every accepted `*_env` (only after the file, its hosts and paths were accepted)."""
        for ref in self.refs:
            if not ref.read():
                self.err(ref.path, f"environment variable {ref.var} is empty or not set.")

    def usage(self, path: Path_, call: Callable[[], Any], *, keys: Mapping[str, str] | None = None) -> Any:
        """`call()`, or None with its BotctlError recorded at `path` -- at `path`'s key when the error
        names a flag that is a key of this table (`keys`: key -> the word the file's reader knows it by)."""
        try:
            return call()
        except BotctlError as exc:
            message, hint, key = in_file_words(exc, keys or {})
            at = path + (key,) if key is not None and (not path or path[-1] != key) else path
            self.err(at, message.rstrip(".") + "." + (f" {hint}" if hint else ""))
            return None
