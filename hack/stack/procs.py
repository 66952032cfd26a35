"""Starting, finding and stopping the local stack's processes.

Test/dev infrastructure only. Components and pod processes are started in their own
session (so they outlive the CLI and can be signalled as a group) and carry the
MARK_ENV variable, so stopping can also find processes that escaped their group.
Liveness checks look at /proc rather than trusting pid files, because a pid can be
reused after a crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from hack.stack.stackconf import MARK_ENV


def _stat_state(pid: int) -> str | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data.rsplit(")", 1)[1].split()[0]


def environ_of(pid: int) -> dict[str, str]:
    """Initial environment of a process (empty if gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def cmdline_of(pid: int) -> list[str]:
    """argv of a process ([] when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def alive(pid: int | None, mark: str | None = None) -> bool:
    """Process exists, is not a zombie, and (if given) carries our stack mark."""
    if not pid:
        return False
    state = _stat_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return mark is None or environ_of(pid).get(MARK_ENV) == mark


def marked_pids(mark: str, key: str = MARK_ENV, value: str | None = None) -> list[int]:
    """Pids whose environment has MARK_ENV=mark (and key=value when given)."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        env = environ_of(int(entry))
        if env.get(MARK_ENV) == mark and (value is None or env.get(key) == value):
            if _stat_state(int(entry)) not in (None, "Z", "X"):
                found.append(int(entry))
    return found


def spawn(argv: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path | str | None = None,
          truncate: bool = False) -> subprocess.Popen[bytes]:
    """Start argv in a new session, stdout+stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb" if truncate else "ab") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=dict(env), cwd=cwd,
                                start_new_session=True)


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by pid, falling back to the pid alone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid and _stat_state(int(entry)) not in ("Z", "X"):
                    members.append(int(entry))
            except OSError:
                continue
    return members


def stop_groups(pids: Iterable[int], grace: float, reap: bool = True) -> None:
    """SIGTERM each process group, wait up to `grace` s, then SIGKILL what is left."""
    pids = [p for p in pids if p]
    for pid in pids:
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if reap:
            _reap()
        if not any(_group_members(p) or alive(p) for p in pids):
            return
        time.sleep(0.1)
    for pid in pids:
        signal_group(pid, signal.SIGKILL)
        for member in _group_members(pid):
            _kill(member)
    if reap:
        time.sleep(0.05)
        _reap()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        _kill(pid)


def _reap() -> None:
    """Collect exited children of this process so they do not linger as zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()[-64 * 1024:]
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
