"""Runs a program from the image's own root filesystem the way a restricted pod runs it.

There is no container runtime here (only buildah, with chroot isolation), so this does by
hand what a kubelet with `readOnlyRootFilesystem: true`, `runAsUser: 65532` and an emptyDir
on /tmp does: the image's rootfs (``buildah mount``) is remounted read-only in a private
mount namespace, one host directory becomes /tmp (the only writable path), /dev is a small
tmpfs with the usual device nodes and /proc is the new PID namespace's, an optional
directory is the projected service-account token, and ``chroot --userspec`` drops to the
image's numeric user before exec. The environment is exactly the image's ``Env`` plus what
the test passes, as a pod spec's ``env`` would add. The network namespace is the host's, so
the program reaches the local S3 and API server on loopback.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# $1 rootfs, $2 host dir for /tmp, $3 uid:gid, $4 host dir for the SA token ("" = none), then argv.
_SCRIPT = r"""
set -eu
root=$1; tmp=$2; user=$3; sa=$4; shift 4
mount --make-rprivate /
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --bind "$tmp" "$root/tmp"
mount -t proc proc "$root/proc"
mount -t tmpfs -o nosuid,mode=755 tmpfs "$root/dev"
for d in null zero random urandom; do touch "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
mkdir "$root/dev/shm"; mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/dev/shm"
if [ -n "$sa" ]; then
  mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$root/run"
  mkdir -p "$root/run/secrets/kubernetes.io/serviceaccount"
  mount --bind -o ro "$sa" "$root/run/secrets/kubernetes.io/serviceaccount"
  mount -o remount,bind,ro "$root/run/secrets/kubernetes.io/serviceaccount"
fi
exec chroot --userspec="$user" "$root" "$@"
"""


@dataclass(frozen=True)
class Rootfs:
    """A mounted image: its root directory and the config its pods would run with."""

    path: Path
    user: str  # "uid:gid", from the image config
    env: dict[str, str]

    def argv(self, program: list[str], tmp: Path, service_account: Path | None = None) -> list[str]:
        return ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--", "sh", "-c", _SCRIPT, "sandbox",
                str(self.path), str(tmp), self.user, str(service_account or ""), *program]

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**self.env, **(extra or {})}

    def run(self, program: list[str], tmp: Path, env: dict[str, str] | None = None, timeout: float = 300,
            service_account: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(program, tmp, service_account), env=self.environ(env), capture_output=True,
                              text=True, timeout=timeout)

    def start(self, program: list[str], tmp: Path, log: Path, env: dict[str, str] | None = None,
              service_account: Path | None = None) -> subprocess.Popen:
        """Start in the background; stdout and stderr go to ``log`` (a pipe would fill and block it)."""
        with log.open("ab") as out:
            return subprocess.Popen(self.argv(program, tmp, service_account), env=self.environ(env),
                                    stdout=out, stderr=subprocess.STDOUT)


def scratch_dir(parent: Path, uid: int, gid: int) -> Path:
    """A host directory for /tmp, owned by the image's user like a fresh emptyDir with fsGroup."""
    import os

    directory = parent / "tmp"
    directory.mkdir(mode=0o755)
    os.chown(directory, uid, gid)
    return directory


def _namespace_init(proc: subprocess.Popen) -> int | None:
    """PID (host view) of the program: the only child of ``unshare --fork``."""
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def stop(proc: subprocess.Popen, log: Path, timeout: float = 20) -> str:
    """SIGTERM to the program itself, SIGKILL after ``timeout``; returns its log.

    Signalling unshare is not enough: the program dropped its credentials (chroot
    --userspec), which clears the parent-death signal --kill-child relies on. The program is
    its PID namespace's init, so when it exits the kernel kills whatever it left behind.
    """
    import os
    import signal

    pid = _namespace_init(proc)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        else:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    return log.read_text(errors="replace")
