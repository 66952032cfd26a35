"""The documented user path, run for real: `hack/walkthrough.py` (which writes docs/walkthrough.md).

Each step checks what its reader should see (issue: what people read):
- Ready stays True while a healthy migration swaps versions (Progressing carries it);
- after `faissctl pin --previous` across an HNSW → IVF migration, the HNSW version serves and
  `kubectl get` / `faissctl status` name the type that serves;
- describe / faissctl status say what recall and p99 were measured on and which pod serves what;
- a configuration error stalls after one failure, with its code in `-o wide`, the remedy in
  Degraded and no retry time for a retry that will not run; a spec fix recovers.
"""

from __future__ import annotations


import pytest

from hack.localstack import Cluster
from hack.walkthrough import run

pytestmark = pytest.mark.e2e


def test_the_walkthrough_shows_each_reader_what_they_should_see(stack_env: dict[str, str]) -> None:
    cluster = Cluster.from_stack()
    with cluster.temporary_namespace("e2e-walk") as ns:
        transcript = run(cluster, ns)  # raises Expectation naming the first thing a reader would not see
    text = transcript.markdown()
    for section in ("## 1. Demo", "## 2. Migration", "## 3. Rollback", "## 4. A failing source"):
        assert section in text
    assert "$ faissctl pin walk --previous" in text and "$ kubectl describe faissindex broken" in text
