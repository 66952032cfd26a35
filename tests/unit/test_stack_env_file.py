"""The stack's env file and kubeconfig are replaced atomically (hack/stack/stackconf.py).

Under pytest-xdist every worker runs `stack up` while the others read those files; a reader
that saw a truncated file ran kubectl and helm against localhost:8080.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from hack.stack.stackconf import write_if_changed


def test_a_reader_never_sees_the_file_empty_while_it_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "env"
    texts = ["export KUBECONFIG=/a\n" * 50, "export KUBECONFIG=/b\n" * 50]
    write_if_changed(path, texts[0])
    seen: set[str] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(300):
        write_if_changed(path, texts[i % 2])
    done.set()
    reader.join()
    assert seen <= set(texts)


def test_an_unchanged_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_if_changed(path, "same\n")
    before = path.stat().st_ino
    write_if_changed(path, "same\n")
    assert path.stat().st_ino == before
    write_if_changed(path, "changed\n")
    assert path.read_text() == "changed\n" and not list(tmp_path.glob(".*.tmp"))


def test_a_kubeconfig_is_never_readable_by_others_even_while_it_is_being_written(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "kubeconfig"
    modes_at_write: list[int] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:  # the temporary file's mode when its content goes in
        modes_at_write.append(os.fstat(fd).st_mode & 0o777)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    old_umask = os.umask(0o022)
    try:
        write_if_changed(path, "client-key-data: secret\n", mode=0o600)
        assert path.stat().st_mode & 0o777 == 0o600
        write_if_changed(path, "client-key-data: other\n", mode=0o600)
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text() == "client-key-data: other\n"
    assert modes_at_write and set(modes_at_write) == {0o600}, modes_at_write
