"""Offline validation of FaissIndex manifests with the same models the CRD is generated from. Pure.

Every problem is reported with its path (``spec.parameters.nlist: ...``) so a person can
fix all of them in one go, before ``kubectl apply`` or an ArgoCD sync would reject the
first one. Documents of other kinds in the same file (a Secret next to the index) are
skipped, not errors; a ``kind: List`` is unpacked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from indexops_api.constants import API_VERSION, GROUP, KIND
from indexops_api.spec import FaissIndexSpec

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 63  # the name is a label value (faiss.indexops.io/index) on Jobs and Deployments


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class DocResult:
    source: str  # file name
    document: int  # 0-based position in the file (items of a List count on)
    name: str | None = None
    kind: str | None = None
    skipped: bool = False  # not a FaissIndex
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_wire(self) -> dict[str, Any]:
        return {"file": self.source, "document": self.document, "kind": self.kind, "name": self.name,
                "skipped": self.skipped, "valid": self.valid, "problems": [{"path": p.path, "message": p.message} for p in self.problems]}


def _path(loc: tuple[Any, ...]) -> str:
    out = "spec"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" not in str(part):  # pydantic's internal steps like "function-after[...]"
            out += f".{part}"
    return out


def _message(error: dict[str, Any]) -> str:
    kind, msg, value = error["type"], error["msg"], error.get("input")
    if kind == "extra_forbidden":
        return "unknown field (misspelled, or not supported by this API version)"
    if kind == "missing":
        return "required field is missing"
    msg = msg.removeprefix("Value error, ")
    if isinstance(value, str | int | float | bool) and kind not in ("value_error",):
        msg += f" (got {value!r})"
    return msg


def spec_problems(spec: Any) -> list[Problem]:
    """Every problem pydantic finds in ``spec`` (the same rules the CRD's schema and CEL enforce)."""
    if not isinstance(spec, dict):
        return [Problem("spec", "required mapping is missing" if spec is None else f"must be a mapping, got {type(spec).__name__}")]
    try:
        FaissIndexSpec.model_validate(spec)
    except ValidationError as exc:
        return [p for e in exc.errors() for p in _split(_path(tuple(e["loc"])), _message(e))]
    return []


_LEADING_PATH = re.compile(r"^([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)+) (.+)$")


def _split(path: str, message: str) -> list[Problem]:
    """A model-level message listing several problems ("parameters.nlist does not apply ...; ...")
    becomes one problem per part, each at its own path when the part starts with one."""
    problems = []
    for part in message.split("; "):
        match = _LEADING_PATH.match(part)
        problems.append(Problem(f"{path}.{match.group(1)}", match.group(2)) if match else Problem(path, part))
    return problems


def document_problems(doc: Any, result: DocResult) -> None:
    """Fill ``result`` for one parsed document."""
    if not isinstance(doc, dict):
        result.problems.append(Problem("", f"document is a {type(doc).__name__}, not a Kubernetes object"))
        return
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    result.kind = kind
    meta = doc.get("metadata")
    result.name = meta.get("name") if isinstance(meta, dict) else None
    in_group = isinstance(api_version, str) and api_version.split("/")[0] == GROUP
    if kind != KIND and not in_group:
        result.skipped = True
        return
    if api_version != API_VERSION:
        result.problems.append(Problem("apiVersion", f"must be {API_VERSION}, got {api_version!r}"))
    if kind != KIND:
        result.problems.append(Problem("kind", f"must be {KIND}, got {kind!r}"))
    result.problems += _metadata_problems(meta)
    result.problems += spec_problems(doc.get("spec"))


def _metadata_problems(meta: Any) -> list[Problem]:
    if not isinstance(meta, dict):
        return [Problem("metadata", "required mapping with a name is missing")]
    problems = []
    name = meta.get("name")
    if not name:
        problems.append(Problem("metadata.name", "required field is missing"))
    elif not isinstance(name, str) or not DNS_LABEL.match(name) or len(name) > MAX_NAME:
        problems.append(Problem("metadata.name", f"must be a DNS label (lowercase letters, digits, '-') of at most {MAX_NAME} characters, got {name!r}"))
    ns = meta.get("namespace")
    if ns is not None and (not isinstance(ns, str) or not DNS_LABEL.match(ns) or len(ns) > MAX_NAME):
        problems.append(Problem("metadata.namespace", f"must be a DNS label, got {ns!r}"))
    return problems


def validate_text(text: str, source: str) -> list[DocResult]:
    """Every document of a YAML or JSON file (multi-document, ``kind: List`` unpacked)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [DocResult(source, 0, problems=[Problem("", f"not valid YAML/JSON{where}: {problem}")])]
    if not docs:
        return [DocResult(source, 0, problems=[Problem("", "no documents in the file")])]
    results: list[DocResult] = []
    for doc in docs:
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        for item in items if isinstance(items, list) else [doc]:
            result = DocResult(source, len(results))
            document_problems(item, result)
            results.append(result)
    return results


def only_index(results: list[DocResult], name: str | None) -> tuple[int | None, str]:
    """Which FaissIndex document of a file to use (by ``name`` when several), or why none."""
    indexes = [r for r in results if not r.skipped]
    if name is not None:
        indexes = [r for r in indexes if r.name == name]
    if len(indexes) == 1:
        return indexes[0].document, ""
    if not indexes:
        return None, "no FaissIndex" + (f" named {name!r}" if name else "") + " in the file"
    return None, f"{len(indexes)} FaissIndex documents in the file; choose one with --name ({', '.join(str(r.name) for r in indexes)})"


def load_documents(text: str) -> list[Any]:
    """The objects of a file in the order ``validate_text`` numbers them (call after it found no YAML error)."""
    out: list[Any] = []
    for doc in (d for d in yaml.safe_load_all(text) if d is not None):
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        out += items if isinstance(items, list) else [doc]
    return out
