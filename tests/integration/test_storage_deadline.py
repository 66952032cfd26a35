"""A hung or refusing S3 endpoint becomes ``StorageUnavailable`` within the operator's deadline.

Real sockets, no mocks: a listener that accepts connections and never answers (what a hung
S3 looked like in the chaos runs: the build took 72 s and nothing said why) and a port
nobody listens on. Issue 17 item 4.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from s3_harness import free_port

from indexops_api.spec import FaissIndexSpec
from indexops_store import StorageError, StorageUnavailable
from faiss_operator.config import OperatorConfig
from faiss_operator.storage_policy import StorageGrant, normalize_endpoint
from faiss_operator.artifacts import Artifacts, bounded, store_for

pytestmark = pytest.mark.integration


@pytest.fixture
def hung_endpoint(fake_aws_env: None) -> Iterator[str]:
    """Accepts TCP connections, reads the request, never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _artifacts(endpoint: str) -> Artifacts:
    spec = FaissIndexSpec.model_validate({
        "horizon": "6h", "dimension": 8,
        "source": {"s3": {"bucket": "emb", "key": "e.npy"}},
        "storage": {"bucket": "idx", "endpoint": endpoint},
    })
    config = OperatorConfig(storage_grants=(StorageGrant(endpoint=normalize_endpoint(endpoint)),))
    return Artifacts(store_for(spec, "ns", "idx", config), spec, "ns", "idx")


def test_a_hung_endpoint_is_reported_unavailable_within_the_deadline(hung_endpoint):
    at = _artifacts(hung_endpoint)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=r"did not answer within 2s \(reading the pointer\)"):
        bounded("reading the pointer", at.store.read_pointer, at.pointer, deadline=2)
    assert time.monotonic() - started < 3.5


def test_a_refused_connection_is_storage_unavailable_not_a_generic_error(fake_aws_env):
    at = _artifacts(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(StorageError) as info:
        bounded("reading the pointer", at.store.read_pointer, at.pointer, deadline=30)
    assert isinstance(info.value, StorageUnavailable), info.value
    assert "refused" in str(info.value).lower() or "unreachable" in str(info.value)


def test_a_storage_that_answers_is_read_normally(s3_endpoint, s3, buckets):
    at = _artifacts(s3_endpoint)
    at.store.bucket = buckets.artifacts
    assert bounded("reading the pointer", at.store.read_pointer, at.pointer) == (None, None)


def test_while_a_hung_call_has_not_returned_the_same_step_fails_at_once_instead_of_stacking_threads(hung_endpoint):
    at = _artifacts(hung_endpoint)
    step = ("ns", "idx", "observe")
    with pytest.raises(StorageUnavailable, match="did not answer within 1s"):
        bounded("reading the pointer", at.store.read_pointer, at.pointer, deadline=1, key=step)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=r"has not answered a call made \d+s ago"):
        bounded("reading the pointer", at.store.read_pointer, at.pointer, deadline=1, key=step)
    assert time.monotonic() - started < 0.5
