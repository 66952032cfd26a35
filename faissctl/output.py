"""Printing: kubectl-style aligned tables and ages for people, JSON/YAML for scripts. Pure.

Human output goes to stdout; progress and hints go to stderr, so ``-o json`` output can
always be piped into ``jq`` even while ``--wait`` reports progress.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import yaml

FORMATS = ("human", "json", "yaml")
NONE = "-"


def dump(data: Any, fmt: str) -> str:
    """``data`` (JSON-ready) as ``json`` or ``yaml`` text ending in a newline."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    raise ValueError(f"unknown output format {fmt!r}")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "") -> str:
    """Columns left-aligned and separated by three spaces, like ``kubectl get``; the last one is not padded."""
    cells = [[str(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        padded = [v.ljust(widths[i]) if i < len(r) - 1 else v for i, v in enumerate(r)]
        lines.append((indent + "   ".join(padded)).rstrip())
    return "\n".join(lines) + "\n"


def cell(value: Any) -> str:
    """One table cell: ``-`` for missing values, trimmed floats, one line."""
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value < 100 else f"{value:.1f}"
    return str(value).replace("\n", " ")


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp from the API server or a manifest (None when absent or unreadable)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def human_duration(seconds: float) -> str:
    """kubectl's ages: ``45s``, ``3m20s``, ``42m``, ``5h10m``, ``20h``, ``3d4h``, ``120d``, ``2y30d``."""
    s = int(max(seconds, 0))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 192:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 730:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d" if d % 365 else f"{d // 365}y"


def age(value: str | None, now: datetime) -> str:
    """How long ago ``value`` was (``-`` when unknown)."""
    when = parse_time(value)
    return human_duration((now - when).total_seconds()) if when else NONE


def until(value: str | None, now: datetime) -> str:
    """How long until ``value`` (``now`` when it is past; ``-`` when unknown)."""
    when = parse_time(value)
    if when is None:
        return NONE
    delta = (when - now).total_seconds()
    return f"in {human_duration(delta)}" if delta > 0 else "now"


def relative(value: str | None, now: datetime) -> str:
    """``<timestamp> (5m ago)`` or ``<timestamp> (in 3h)``; ``-`` when unknown."""
    when = parse_time(value)
    if when is None:
        return value or NONE
    delta = (when - now).total_seconds()
    rel = f"in {human_duration(delta)}" if delta > 0 else f"{human_duration(-delta)} ago"
    return f"{value} ({rel})"


def size(n: int | None) -> str:
    """Bytes in binary units: ``812 B``, ``1.2 MiB``."""
    if n is None:
        return NONE
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def ms(value: float | None) -> str:
    return NONE if value is None else f"{value:.3f} ms"
