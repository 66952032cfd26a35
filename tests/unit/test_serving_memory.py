"""Memory headroom is read like the kubelet does and refuses a version that would not fit."""

from __future__ import annotations

from pathlib import Path

from index_serving.memory import MemoryReading, headroom_problem, read_available_memory

MiB = 1 << 20


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (directory / name.replace("_", ".", 1)).write_text(body)
    return directory


def meminfo(tmp_path: Path, available_kb: int = 2_000_000) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    {available_kb} kB\n")
    return path


def test_cgroup_v2_headroom_is_the_limit_minus_usage_not_counting_inactive_page_cache(tmp_path: Path) -> None:
    root = write(tmp_path / "cg", memory_max=str(1024 * MiB), memory_current=str(700 * MiB),
                 memory_stat=f"anon 1\ninactive_file {200 * MiB}\nactive_file 5\n")
    assert read_available_memory(root, meminfo(tmp_path)) == MemoryReading(524 * MiB, "cgroup-v2")


def test_an_unlimited_cgroup_falls_back_to_mem_available(tmp_path: Path) -> None:
    root = write(tmp_path / "cg", memory_max="max", memory_current=str(700 * MiB))
    assert read_available_memory(root, meminfo(tmp_path, 3000)) == MemoryReading(3000 * 1024, "meminfo")


def test_cgroup_v1_limits_are_read_when_there_is_no_v2_file(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    write(root / "memory", memory_limit_in_bytes=str(512 * MiB), memory_usage_in_bytes=str(300 * MiB),
          memory_stat=f"cache 9\ntotal_inactive_file {100 * MiB}\n")
    assert read_available_memory(root, meminfo(tmp_path)) == MemoryReading(312 * MiB, "cgroup-v1")


def test_nothing_readable_means_unknown_and_unknown_never_refuses(tmp_path: Path) -> None:
    assert read_available_memory(tmp_path / "none", tmp_path / "no-meminfo") is None
    assert headroom_problem(10**12, None) is None


def test_a_version_fits_when_its_size_times_the_factor_is_available() -> None:
    reading = MemoryReading(125 * MiB, "cgroup-v2")
    assert headroom_problem(100 * MiB, reading, factor=1.25) is None
    problem = headroom_problem(101 * MiB, reading, factor=1.25)
    assert problem is not None and "only 125.0 MiB is available (cgroup-v2)" in problem


def test_a_zero_factor_disables_the_check() -> None:
    assert headroom_problem(10**12, MemoryReading(0, "meminfo"), factor=0) is None
