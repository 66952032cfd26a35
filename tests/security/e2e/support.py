"""What a readable API-server or operator message is, for the security e2e tests."""

from __future__ import annotations

import re

# Go-side renderings a person cannot act on: nil pointers, struct/map dumps, panics.
UNREADABLE = re.compile(r"<nil>|&\{|map\[|\[\]interface|goroutine |panic:|0x[0-9a-f]{8,}|Traceback")


# kube-apiserver appends this fixed sentence, with a nil field path, whenever a schema error
# means the CRD's CEL rules were skipped. It is upstream's text after the readable field error.
CEL_SKIPPED = ('<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
               "correct the existing errors to complete validation")


def readable(message: str) -> bool:
    message = message.replace(CEL_SKIPPED, "")
    return bool(message.strip()) and UNREADABLE.search(message) is None and len(message) < 8000
