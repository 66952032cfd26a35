"""What a readable API-server or operator message is, for the security e2e tests."""

from __future__ import annotations

import re

# Go-side renderings a person cannot act on: nil pointers, struct/map dumps, panics.
UNREADABLE = re.compile(r"<nil>|&\{|map\[|\[\]interface|goroutine |panic:|0x[0-9a-f]{8,}|Traceback")


def readable(message: str) -> bool:
    return bool(message.strip()) and UNREADABLE.search(message) is None and len(message) < 8000
