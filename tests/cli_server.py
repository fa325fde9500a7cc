"""A warm ``lightact`` for tests/test_hostile_inputs.py: it imports the command line and what its
commands import (torch, Lightning, the readers) once, then runs each requested command in a forked
child, a process of its own that calls the entry point ``lightact.cli.main()`` with its arguments,
its working directory and environment, stdout and stderr in files, and exits with the command's
status. A fresh interpreter per command costs 5-10 s of imports on a loaded 2-core machine; a fork
costs milliseconds, and the command runs exactly as the ``lightact`` script runs it.

Protocol: one JSON request per line on stdin (``args``, ``cwd``, ``env``, ``stdout``, ``stderr``,
``timeout``, ``umask``, optional ``readonly``: folders mounted read-only for the command, ``tmpfs``: a folder
and a size for a small filesystem), one JSON reply per line on stdout (``rc``; -9 when the command
ran past its timeout). Read-only folders and the small filesystem need a mount namespace of the
child's own: the server is started under ``unshare --user --map-root-user --mount`` when the
machine allows it, and ``mounts`` in the first reply says whether it was.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import traceback

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def _bytes(text) -> bytes | None:
    return None if text is None else str(text).encode()


def _mount(libc, source, target, fstype, flags, data) -> None:
    if libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target} failed")


def _own_mounts(readonly: list[str], tmpfs: list | None) -> None:
    """In the forked child: a mount namespace of its own, with ``readonly`` folders read-only and
    a small tmpfs, so that nothing outside this one command sees them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
    _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE, None)
    for folder in readonly:
        _mount(libc, folder, folder, None, MS_BIND, None)
        _mount(libc, None, folder, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
    if tmpfs:
        folder, size = tmpfs
        _mount(libc, "tmpfs", folder, "tmpfs", 0, f"size={size}")


def _child(request: dict) -> None:
    import lightact.cli

    code = 1
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        os.dup2(os.open(request["stdout"], flags, 0o644), 1)
        os.dup2(os.open(request["stderr"], flags, 0o644), 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.chdir(request["cwd"])
        os.umask(request.get("umask", 0o022))
        for key, value in request.get("env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if request.get("readonly") or request.get("tmpfs"):
            _own_mounts(request.get("readonly") or [], request.get("tmpfs"))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = ["lightact", *request["args"]]
        try:
            lightact.cli.main()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except BaseException:  # as the interpreter would: the traceback, status 1
            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _run(request: dict) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(request)
    deadline = time.monotonic() + request.get("timeout", 300)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -9
        time.sleep(0.01)


def main() -> None:
    # What the commands import, once (each command imports its own parts lazily).
    import lightact.cli  # noqa: F401
    import lightact.data.skeleton.ntu  # noqa: F401
    import lightact.data.skeleton.pose  # noqa: F401
    import lightact.engine.train  # noqa: F401
    import lightact.export  # noqa: F401
    import lightact.inference.skeleton  # noqa: F401
    import lightact.inference.video  # noqa: F401

    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed here goes to stderr, not into the protocol
    mounts = os.environ.get("LIGHTACT_TEST_MOUNTS") == "1"
    protocol.write(json.dumps({"ready": True, "mounts": mounts}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        if line.strip():
            rc = _run(json.loads(line))
            protocol.write(json.dumps({"rc": rc}) + "\n")
            protocol.flush()


if __name__ == "__main__":
    main()
