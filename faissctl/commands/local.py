"""Commands that need no cluster: ``validate FILE...`` and ``build --spec FILE --out DIR``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from faissctl import local_build
from faissctl.app import App, emit, note, output_option
from faissctl.errors import EXIT_FAILED, CtlError
from faissctl.gates import gate_problems
from faissctl.output import cell, ms, size
from faissctl.validate import DocResult, Problem, load_documents, only_index, validate_text


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CtlError(f"cannot read {path}: {exc}") from None


def _render_validation(results: list[DocResult]) -> str:
    lines = []
    for r in results:
        where = f"{r.source}[{r.document}]" + (f" {r.name}" if r.name else "")
        if r.skipped:
            lines.append(f"{where}: skipped ({r.kind or 'no kind'} is not a FaissIndex)")
        elif r.valid:
            lines.append(f"{where}: valid")
        else:
            lines += [f"{where}: {p}" for p in r.problems]
    bad = sum(1 for r in results if not r.valid)
    checked = sum(1 for r in results if not r.skipped)
    lines.append(f"{checked} FaissIndex document(s) checked, {bad} with problems" if bad
                 else f"{checked} FaissIndex document(s) checked, all valid")
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@output_option
def validate(files: tuple[str, ...], fmt: str) -> None:
    """Check FaissIndex manifests (YAML or JSON, multi-document) offline, against the CRD's own models.

    Prints every problem with its path and exits 1 if there is any. Needs no cluster.
    """
    results: list[DocResult] = []
    for path in files:
        try:
            results += validate_text(_read(path), path)
        except CtlError as exc:
            results.append(DocResult(path, 0, problems=[Problem("", exc.message)]))
    emit({"valid": all(r.valid for r in results), "documents": [r.to_wire() for r in results]}, fmt,
         lambda: _render_validation(results))
    if not all(r.valid for r in results):
        sys.exit(EXIT_FAILED)


def _render_build(r: dict) -> str:
    rows = [
        ["Version", r["version"]], ["Folder", r["path"]], ["Index type", r["indexType"] + (f" ({r['factory']})" if r["factory"] else "")],
        ["Vectors", r["vectors"]], ["Size", size(r["sizeBytes"])],
        ["Recall", f"{r['recall']:.4f} (recall@{r['k']} on {r['queries']} held-out queries)"],
        ["Latency", f"p50 {ms(r['latencyP50Ms'])}, p99 {ms(r['latencyP99Ms'])} (single query)"],
        ["Search params", ", ".join(f"{k}={v}" for k, v in r["searchParameters"].items()) or None],
        ["Build time", f"{r['buildSeconds']:.1f} s"],
        ["Gates", "pass" if r["passesGates"] else "FAIL: " + "; ".join(r["gateProblems"])],
    ]
    files = ", ".join(f["name"] for f in r["files"])
    return "".join(f"{k + ':':<15}{cell(v)}\n" for k, v in rows) + f"{'Files:':<15}{files}\n"


@click.command()
@click.option("--spec", "spec_file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="FaissIndex manifest whose spec.source is `file` (relative paths are from the manifest's folder).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder receiving <version>/{index.faiss, ids.npy, manifest.json, ...}.")
@click.option("--name", help="Which FaissIndex of a multi-document file.")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True, path_type=Path), help="Scratch folder (default $TMPDIR).")
@click.option("-v", "--verbose", is_flag=True, help="Show the builder's stage logs (JSON, on stderr).")
@output_option
@click.pass_obj
def build(app: App, spec_file: Path, out: Path, name: str | None, workdir: Path | None, verbose: bool, fmt: str) -> None:
    """Build an index locally, without a cluster: the builder Job's pipeline, output to a folder.

    Exits 1 when the build fails, and also when the version would be rejected by the
    manifest's validation gates (it is still written, for inspection).
    """
    text = _read(str(spec_file))
    results = validate_text(text, str(spec_file))
    position, why = only_index(results, name)
    if position is None:
        raise CtlError(f"{spec_file}: {why}")
    if not results[position].valid:
        raise CtlError(f"{spec_file}: invalid FaissIndex:\n  " + "\n  ".join(str(p) for p in results[position].problems))
    doc = load_documents(text)[position]
    request = local_build.request_from(doc, spec_file.resolve().parent, app.now())
    if verbose:
        from index_builder import logs  # noqa: PLC0415

        logs.configure("INFO")
    note(f"building {request.index} ({request.spec.index_type.value}, dimension {request.spec.dimension}) "
         f"as version {request.version} ...")
    manifest, existed = local_build.build(request, out.resolve(), dict(os.environ), workdir)
    if existed:
        note(f"version {manifest.version} already existed in {out}; nothing rewritten")
    problems = gate_problems(manifest, doc["spec"])
    result = local_build.report(manifest, out.resolve() / manifest.version, problems)
    emit(result, fmt, lambda: _render_build(result))
    if problems:
        sys.exit(EXIT_FAILED)

