"""JSON logs with per-stage timings and progress for long work.

Builds run unattended in Jobs; the only way to know whether one is stuck, slow or
nearly done is its log. Every stage logs its start and its duration, and batched work
logs rows/s and an ETA, as one JSON object per line that log pipelines can index.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pythonjsonlogger.json import JsonFormatter

log = logging.getLogger("index_builder")


def configure(level: str = "INFO") -> None:
    """One JSON handler on the root logger (idempotent, so repeated runs in a process are safe)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601, UTC
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_faiss_builder", False):
            root.removeHandler(old)
    handler._faiss_builder = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass
class StageTimer:
    """Seconds spent per named stage, filled by ``stage()``."""

    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @contextmanager
    def stage(self, name: str, **context: object) -> Iterator[None]:
        log.info("stage started", extra={"stage": name, **context})
        begin = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - begin
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
            log.info("stage finished", extra={"stage": name, "seconds": round(elapsed, 3)})

    def get(self, name: str) -> float:
        return round(self.seconds.get(name, 0.0), 3)

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 3)


class Progress:
    """Logs rows done, rows/s and ETA at most every ``every_seconds`` (and at the end)."""

    def __init__(self, what: str, total: int, every_seconds: float = 10.0):
        self.what, self.total, self.every = what, total, every_seconds
        self.done = 0
        self.begin = self.last = time.perf_counter()

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if now - self.last < self.every and self.done < self.total:
            return
        self.last = now
        rate = self.done / max(now - self.begin, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else None
        log.info(
            f"{self.what} progress",
            extra={
                "rows": self.done,
                "total": self.total,
                "percent": round(100.0 * self.done / max(self.total, 1), 1),
                "rows_per_second": round(rate, 1),
                "eta_seconds": round(eta, 1) if eta is not None else None,
            },
        )
