"""The RBAC the operator needs: one entry per kind of API call its code makes.

The chart's ClusterRole must grant exactly this (tests/unit/test_chart_rbac.py compares
them); the e2e tests run the operator under that ClusterRole, so a missing entry fails
them and an extra one fails the unit test.
"""

from __future__ import annotations

from indexops_api.constants import GROUP, PLURAL

REQUIRED: dict[tuple[str, str], frozenset[str]] = {
    # handlers.py (kopf watch), handlers._fetch (get); kopf patches finalizers/annotations.
    (GROUP, PLURAL): frozenset({"get", "list", "watch", "patch"}),
    # execute.py: status is written only by the operator.
    (GROUP, f"{PLURAL}/status"): frozenset({"patch"}),
    # execute.py creates builder Jobs, observe.observe_job reads them, handlers watches them.
    ("batch", "jobs"): frozenset({"get", "list", "watch", "create"}),
    # observe._termination_message lists a failed Job's pods.
    ("", "pods"): frozenset({"list"}),
    # execute.py server-side applies (may create) serving objects; observe reads/watches Deployments.
    ("apps", "deployments"): frozenset({"get", "list", "watch", "create", "patch"}),
    ("", "services"): frozenset({"create", "patch"}),
    # kopf.event() posts core/v1 Events.
    ("", "events"): frozenset({"create"}),
}
