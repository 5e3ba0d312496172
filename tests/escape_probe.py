"""Attacker code inside the edge's sandbox (run by tests/test_edge_escape.py; not a test module itself).

Started exactly as the supervisor starts the edge (same interpreter and flags, same user, environment,
working directory and edge arguments, only `--port 0`), it goes through the edge's own start-up —
`botctld.__main__.prepare()`: build the app, bind, confine — and then, instead of serving, does what a
remote-code-execution bug in the edge would let an attacker do. It prints one JSON object: for every
attempt, whether it got through ("escaped") and what happened. Targets come in PROBE_TARGETS (JSON).
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys

PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SEIZE = 16, 17, 0x4206


class IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def main() -> None:
    targets = json.loads(os.environ.pop("PROBE_TARGETS"))
    if "--unconfined-control" in sys.argv:  # the control run: the same attacks with no sandbox at all
        sys.argv.remove("--unconfined-control")
        info = {"sandbox": "none (control)", "uid": os.getuid()}
    else:
        from botctld.__main__ import prepare

        _server, _sock, info = prepare(sys.argv[1:])
    results: dict[str, dict[str, object]] = {}

    def attempt(name: str, fn) -> None:  # noqa: ANN001
        try:
            detail = fn()
        except Exception as exc:
            results[name] = {"escaped": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
        else:
            results[name] = {"escaped": True, "detail": repr(detail)[:200]}

    def read(path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read(64)

    for path in targets["read"]:
        attempt(f"read {path}", lambda p=path: read(p))
    for path in targets["write"]:
        attempt(f"write {path}", lambda p=path: open(p, "r+b").close())
    for folder in targets["list"]:
        attempt(f"list {folder}", lambda f=folder: os.listdir(f))
        attempt(f"create a file in {folder}", lambda f=folder: open(os.path.join(f, "planted"), "xb").close())
    attempt(
        "exec a helper that reads the vault",
        lambda: subprocess.run(
            ["cat", targets["read"][0]], capture_output=True, check=True, timeout=10
        ).stdout[:8],
    )

    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    for role, pid in targets["pids"].items():
        for part in ("environ", "mem", "maps", "auxv", "fd"):
            path = f"/proc/{pid}/{part}"
            attempt(f"{role}: {path}", lambda p=path: os.listdir(p) if p.endswith("/fd") else read(p))

        def ptrace(request: int, pid: int = pid) -> str:
            if libc.ptrace(request, pid, None, None) != 0:
                err = ctypes.get_errno()
                raise PermissionError(err, os.strerror(err))
            libc.ptrace(PTRACE_DETACH, pid, None, None)
            return "attached"

        attempt(f"{role}: ptrace attach", lambda: ptrace(PTRACE_ATTACH))
        attempt(f"{role}: ptrace seize", lambda: ptrace(PTRACE_SEIZE))

        def vm_read(pid: int = pid) -> str:
            buf = ctypes.create_string_buffer(8)
            local = IOVec(ctypes.cast(buf, ctypes.c_void_p), 8)
            remote = IOVec(ctypes.cast(libc.printf, ctypes.c_void_p), 8)  # libc is mapped in the target too
            if libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0:
                err = ctypes.get_errno()
                if err == 14:  # EFAULT: the kernel allowed the access, only the address was wrong
                    return "permitted (EFAULT)"
                raise PermissionError(err, os.strerror(err))
            return buf.raw

        attempt(f"{role}: process_vm_readv", vm_read)
        attempt(f"{role}: signal", lambda pid=pid: os.kill(pid, 0))

    def provider(method: str, path: str) -> tuple[int, bytes]:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(targets["socket"])
            s.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: provider\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}".encode()
            )
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return int(data.split(b" ", 2)[1]), data

    def documented(method: str, path: str) -> str:
        status, _ = provider(method, path)
        return f"HTTP {status}"

    def undocumented(method: str, path: str) -> str:
        status, body = provider(method, path)
        if status in (404, 405):
            raise PermissionError(f"HTTP {status}")
        return f"HTTP {status}: {body[-120:]!r}"

    results["provider socket: documented route"] = {
        "escaped": False,
        "reachable": documented("GET", targets["documented"]),
    }
    for method, path in targets["undocumented"]:
        attempt(f"provider socket: {method} {path}", lambda m=method, p=path: undocumented(m, p))
    for host, port in targets["tcp"]:
        attempt(
            f"tcp connect {host}:{port}",
            lambda h=host, p=port: socket.create_connection((h, p), timeout=3).close(),
        )

    def bind_tcp() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            return s.getsockname()[1]

    attempt("tcp bind a new port", bind_tcp)
    print(json.dumps({"confinement": info, "uid": os.getuid(), "results": results}))


if __name__ == "__main__":
    main()
