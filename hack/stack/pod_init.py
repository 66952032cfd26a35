"""Container init for the dev node agent: mount volumes, then exec the container command.

Runs inside the container's fresh mount namespace (``unshare --mount``). Every mount
source is opened (O_PATH) before anything is mounted and bind-mounted through
``/proc/self/fd/N`` with the mount(2) syscall, so a volume
mounted over an ancestor directory (an emptyDir at /tmp while the checkout lives under
/tmp) can neither hide a later source nor the project's own files, which are re-exposed
at their paths. Dev/test infrastructure only.

Usage: pod_init.py PLAN_JSON -- COMMAND [ARGS...]
PLAN_JSON: {"mounts": [[source, target, is_dir, read_only]...], "expose": [path...], "workdir": str}
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
_libc = ctypes.CDLL(None, use_errno=True)


def fail(message: str) -> None:
    print(f"node-agent: {message}", file=sys.stderr, flush=True)
    raise SystemExit(128)


def _mount(source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source is not None else None
    if _libc.mount(src, target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        fail(f"cannot bind-mount {target}: {os.strerror(err)}")


def _mount_point(target: str, is_dir: bool) -> None:
    try:
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
            if not os.path.exists(target):
                open(target, "a").close()
    except OSError as exc:
        fail(f"cannot create mount point {target}: {exc}")


def main(argv: list[str]) -> None:
    plan = json.loads(argv[1])
    command = argv[argv.index("--") + 1:]
    try:  # open every source first: later mounts may cover their paths
        fds = {path: os.open(path, os.O_PATH) for path in [m[0] for m in plan["mounts"]] + plan["expose"]}
    except OSError as exc:
        fail(f"volume source missing: {exc}")
    for source, target, is_dir, read_only in plan["mounts"]:
        fd = fds[source]
        _mount_point(target, is_dir)
        _mount(f"/proc/self/fd/{fd}", target, MS_BIND | MS_REC)
        if read_only:
            _mount(None, target, MS_REMOUNT | MS_BIND | MS_RDONLY)
    for path in plan["expose"]:
        _mount_point(path, True)
        _mount(f"/proc/self/fd/{fds[path]}", path, MS_BIND | MS_REC)
    for fd in fds.values():
        os.close(fd)
    try:
        os.makedirs(plan["workdir"], exist_ok=True)
        os.chdir(plan["workdir"])
    except OSError as exc:
        fail(f"cannot enter working dir {plan['workdir']}: {exc}")
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        fail(f"exec {command[0]}: {exc}")


if __name__ == "__main__":
    main(sys.argv)
