"""How the reconcile loop logs a failed pass: expected refusals in one line, bugs with a traceback."""

from __future__ import annotations

import json
import logging

from kubernetes.client.rest import ApiException

from faiss_operator.handlers import failure_log
from faiss_operator.kube import api_error_summary, is_namespace_terminating


def api_error(status: int, reason: str, body: dict | str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = body if isinstance(body, str) else json.dumps(body)
    exc.headers = {"Audit-Id": "secret-looking-header"}
    return exc


TERMINATING = api_error(403, "Forbidden", {
    "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'deployments.apps "x-serving" is forbidden: unable to create new content in namespace t1 because it is being terminated',
    "details": {"name": "x-serving", "causes": [{"reason": "NamespaceTerminating", "message": "namespace t1 is being terminated"}]},
})


def test_a_refusal_because_the_namespace_is_being_deleted_is_one_info_line_without_traceback():
    level, message, trace = failure_log(TERMINATING, "t1", 2.0)
    assert (level, trace) == (logging.INFO, False)
    assert "namespace t1 is being deleted" in message and "retrying in 2s" in message


def test_a_forbidden_error_for_any_other_cause_is_not_taken_for_a_terminating_namespace():
    rbac = api_error(403, "Forbidden", {"message": "deployments.apps is forbidden: User cannot create", "details": {"kind": "deployments"}})
    assert not is_namespace_terminating(rbac)
    level, message, trace = failure_log(rbac, "t1", 1.0)
    assert (level, trace) == (logging.ERROR, True)
    assert "User cannot create" in message


def test_a_conflict_with_another_writer_is_one_warning_line():
    level, message, trace = failure_log(api_error(409, "Conflict", {"message": "the object has been modified"}), "t1", 4.0)
    assert (level, trace) == (logging.WARNING, False)
    assert "the object has been modified" in message


def test_api_errors_are_summarised_without_http_headers_and_survive_a_body_that_is_not_json():
    assert api_error_summary(TERMINATING).startswith("HTTP 403 Forbidden: deployments.apps")
    assert "Audit-Id" not in failure_log(api_error(500, "Internal Server Error", {"message": "etcd down"}), "t1", 1.0)[1]
    garbled = api_error(403, "Forbidden", "<html>proxy says no</html>")
    assert not is_namespace_terminating(garbled)
    assert api_error_summary(garbled) == "HTTP 403 Forbidden"


def test_an_unexpected_exception_keeps_its_traceback():
    level, message, trace = failure_log(KeyError("status"), "t1", 8.0)
    assert (level, trace) == (logging.ERROR, True)
    assert "retrying in 8s" in message and "status" in message
