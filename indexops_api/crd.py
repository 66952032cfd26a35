"""Generate the FaissIndex CustomResourceDefinition from the pydantic models.

Pydantic's JSON schema is turned into a Kubernetes *structural* schema: ``$ref`` inlined,
``anyOf [X, null]`` collapsed to ``X``, titles dropped, enums kept, CEL rules attached.
The result is committed under ``crds/`` and the chart; a test fails when it drifts.
"""

from __future__ import annotations

from typing import Any

from indexops_api import constants as c
from indexops_api.spec import SPEC_CEL_RULES, FaissIndexSpec

_DROP = {"title"}

PRINTER_COLUMNS = [
    {"name": "Horizon", "type": "string", "jsonPath": ".spec.horizon"},
    {"name": "Type", "type": "string", "jsonPath": ".status.indexType"},
    {"name": "Version", "type": "string", "jsonPath": ".status.currentVersion"},
    {"name": "Canary%", "type": "integer", "jsonPath": ".status.rolloutPercent"},
    {"name": "Recall", "type": "number", "jsonPath": ".status.recall"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "priority": 1},
    {"name": "Spec-Type", "type": "string", "jsonPath": ".spec.indexType", "priority": 1},
    {"name": "Vectors", "type": "integer", "jsonPath": ".status.vectors", "priority": 1},
    {"name": "Candidate", "type": "string", "jsonPath": ".status.candidateVersion", "priority": 1},
    {"name": "Failures", "type": "integer", "jsonPath": ".status.consecutiveFailures", "priority": 1},
    {"name": "Last-Result", "type": "string", "jsonPath": ".status.lastBuild.reason", "priority": 1},
    {"name": "Next-Build", "type": "string", "jsonPath": ".status.nextScheduledBuild", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _resolve(defs[node["$ref"].split("/")[-1]], defs)
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **_resolve(extra, defs)}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            merged = {**_resolve(options[0], defs), **{k: v for k, v in node.items() if k != "anyOf"}}
            if merged.get("default", 0) is None:
                merged.pop("default")
            return _resolve(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: _resolve(v, defs) for name, v in value.items()}
        elif key == "additionalProperties" and value is False:
            continue
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020 puts the bound here; OpenAPI v3 (Kubernetes) wants a flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = _resolve(value, defs)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def spec_schema() -> dict[str, Any]:
    raw = FaissIndexSpec.model_json_schema(by_alias=True, mode="validation")
    schema = _resolve(raw, raw.get("$defs", {}))
    schema["x-kubernetes-validations"] = SPEC_CEL_RULES
    return schema


def status_schema() -> dict[str, Any]:
    # Status is written by the operator only; keep it permissive so an older CRD never
    # prunes fields written by a newer operator, but document the known shape.
    from indexops_api.status import FaissIndexStatus

    raw = FaissIndexStatus.model_json_schema(by_alias=True, mode="serialization")
    schema = _resolve(raw, raw.get("$defs", {}))
    schema["x-kubernetes-preserve-unknown-fields"] = True
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def _strip_defaults_with_enum_objects(schema: Any) -> Any:
    """Pydantic emits object defaults for nested models; the API server accepts them,
    but they bloat the CRD. Keep scalar defaults only."""
    if isinstance(schema, list):
        return [_strip_defaults_with_enum_objects(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strip_defaults_with_enum_objects(v) for k, v in schema.items()}
    if isinstance(out.get("default"), (dict, list)):
        out.pop("default")
        if out.get("type") == "object":
            out["default"] = {}
    return out


def crd() -> dict[str, Any]:
    spec = _strip_defaults_with_enum_objects(spec_schema())
    status = _drop_defaults(status_schema())
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{c.PLURAL}.{c.GROUP}", "labels": {c.LABEL_PART_OF: c.PART_OF}},
        "spec": {
            "group": c.GROUP,
            "names": {
                "kind": c.KIND,
                "listKind": f"{c.KIND}List",
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "shortNames": c.SHORT_NAMES,
                "categories": ["all", "faiss"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "FaissIndex declares one FAISS vector index: source, type, validation gates and rollout.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def _drop_defaults(schema: Any) -> Any:
    """Status has no defaults: it is written whole by the operator."""
    if isinstance(schema, list):
        return [_drop_defaults(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: _drop_defaults(v) for k, v in schema.items() if k != "default"}
