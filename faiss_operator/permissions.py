"""The RBAC the operator needs: one entry per kind of API call its code makes.

The chart's ClusterRole (or, when namespaces are watched, its Role in each of them) must
grant exactly ``REQUIRED`` (tests/unit/test_chart_rbac.py compares them) and its namespaced leader-election Role exactly ``LEADER_ELECTION``
(tests/unit/test_leader.py); the e2e tests run the operator under those roles, so a
missing entry fails them and an extra one fails the unit tests.
"""

from __future__ import annotations

from indexops_api.constants import GROUP, PLURAL

REQUIRED: dict[tuple[str, str], frozenset[str]] = {
    # handlers.py (kopf watch), handlers._fetch (get); kopf patches finalizers/annotations.
    (GROUP, PLURAL): frozenset({"get", "list", "watch", "patch"}),
    # execute.py: status is written only by the operator.
    (GROUP, f"{PLURAL}/status"): frozenset({"patch"}),
    # execute.py creates builder Jobs, resumes one created suspended (it waited for a replaced
    # build's pods to go), deletes replaced/old finished ones; observe lists an index's Jobs;
    # handlers watches them.
    ("batch", "jobs"): frozenset({"get", "list", "watch", "create", "patch", "delete"}),
    # observe._termination_message lists a failed Job's pods; replicas.py lists serving pods.
    ("", "pods"): frozenset({"list"}),
    # replicas.py: only pods of a ReplicaSet controlled by the operator's Deployment report.
    ("apps", "replicasets"): frozenset({"list"}),
    # execute.py server-side applies (may create) serving objects; observe reads/watches Deployments;
    # shard_cleanup.py lists an index's shard Deployments/Services and deletes those of a stale layout.
    ("apps", "deployments"): frozenset({"get", "list", "watch", "create", "patch", "delete"}),
    ("", "services"): frozenset({"create", "patch", "list", "delete"}),
    # kopf.event() posts core/v1 Events.
    ("", "events"): frozenset({"create"}),
}

# leader.py: the leader-election Lease lives in the operator's own namespace, so these are
# granted by a Role there, never cluster-wide: create it the first time, then get and
# update it (renew, take over, release). The chart limits get/update to the one Lease name.
LEADER_ELECTION: dict[tuple[str, str], frozenset[str]] = {
    ("coordination.k8s.io", "leases"): frozenset({"get", "create", "update"}),
}

# sync.py reads the DSN Secret a PostgreSQL source names, for the drift check. Optional and
# separate (chart value rbac.readSourceSecrets, templates/rbac-source-secrets.yaml): without
# it the operator cannot read any Secret and drift checks of PostgreSQL sources report
# SyncFailed. Only get: the operator never lists or watches Secrets.
SOURCE_SECRETS: dict[tuple[str, str], frozenset[str]] = {
    ("", "secrets"): frozenset({"get"}),
}
