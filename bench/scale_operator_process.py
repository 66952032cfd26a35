"""The operator as the scale bench runs it: the real entry point, plus request counting.

Bench infrastructure, not product code. Both clients the operator uses for outbound HTTP
go through hooks installed here before the operator is imported: urllib3 (the kubernetes
client's calls and boto3/botocore's S3 calls) and aiohttp (kopf's watch streams and
patches). Counts per ``host:port`` and method are written as JSON to
``$FAISS_BENCH_COUNTS`` every second, so the bench can tell API-server requests from S3
requests and take rates over any window without talking to the process.

Usage: python bench/scale_operator_process.py [faiss-operator options]
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def _count(host: str | None, port: int | None, method: str) -> None:
    with _lock:
        _counts[f"{host}:{port} {method.upper()}"] += 1


def _install_hooks() -> None:
    import aiohttp
    import urllib3.connectionpool

    original_urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def urlopen(self, method, url, *args, **kwargs):  # noqa: ANN001
        _count(self.host, self.port, method)
        return original_urlopen(self, method, url, *args, **kwargs)

    urllib3.connectionpool.HTTPConnectionPool.urlopen = urlopen

    original_request = aiohttp.ClientSession._request

    async def request(self, method, str_or_url, *args, **kwargs):  # noqa: ANN001
        url = aiohttp.client.URL(str(str_or_url))
        _count(url.host, url.port, method)
        return await original_request(self, method, str_or_url, *args, **kwargs)

    aiohttp.ClientSession._request = request


def _dump_forever(path: str) -> None:
    while True:
        with _lock:
            snapshot = {"t": time.time(), "requests": dict(_counts)}
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(snapshot, f)
        os.replace(tmp, path)
        time.sleep(1.0)


if __name__ == "__main__":
    _install_hooks()
    out = os.environ.get("FAISS_BENCH_COUNTS")
    if out:
        threading.Thread(target=_dump_forever, args=(out,), daemon=True, name="bench-counts").start()
    from faiss_operator.main import main

    main()
