"""Writing ``bench/results/builder.{json,md,png}`` from the builder benchmark's result dict.

Kept apart from the measuring code so the table and plot can be regenerated from a saved
``builder.json`` (``python bench/report.py``) without rebuilding anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAN = float("nan")


def _mb(n: float | None) -> str:
    return "–" if n is None else f"{n / 2**20:,.0f} MiB"


def _f(x: float | None, fmt: str) -> str:
    return "–" if x is None or x != x else format(x, fmt)


def _params(search: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in search.items())


def index_bytes(manifest: dict) -> int | None:
    """Size of the index file itself (sizeBytes also counts ids.npy and the query rows)."""
    for entry in manifest.get("files", []):
        if entry["name"] == manifest.get("indexFile"):
            return entry["size"]
    return manifest.get("sizeBytes")


def table(result: dict) -> list[str]:
    lines = [
        "| type | factory | raw faiss build s | builder end-to-end s | ratio | recall@10 raw / builder (builder's own, held out) | p99 ms raw / builder | index bytes | peak RSS raw / builder |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["types"]:
        raw, b = row["raw"], row["builder"]
        m, held = b["manifest"], b["held_out"]
        own = m["measurements"]
        ratio = b["seconds"] / raw["seconds"] if raw.get("seconds") else None
        lines.append(
            f"| {row['type']} | `{row['factory']}` {_params(m['searchParameters'])} | {_f(raw.get('seconds'), '.2f')} | {b['seconds']:.1f} | "
            f"{_f(ratio, '.2f')}x | {_f(raw.get('recall_at_10'), '.3f')} / {held['recall_at_10']:.3f} ({own['recallAtK']:.3f}) | "
            f"{_f(raw.get('p99_ms'), '.3f')} / {held['p99_ms']:.3f} | {index_bytes(m):,} | "
            f"{_mb(raw.get('peak_rss_bytes'))} / {_mb(b['peak_rss_bytes'])} |"
        )
    a = result["autofaiss"]
    if "seconds" in a:
        lines.append(
            f"| autofaiss | `{a.get('factory')}` {(a.get('info') or {}).get('index_param', '')} | {a['seconds']:.1f} (build_index) | – | – | {a['recall_at_10']:.3f} | "
            f"{a['p99_ms']:.3f} | {_f((a.get('info') or {}).get('size in bytes'), ',')} | {_mb(a.get('peak_rss_bytes'))} |"
        )
    return lines


def _hnsw_memory(result: dict) -> dict:
    for row in result["types"]:
        if row["type"] == "HNSW":
            return row["builder"]["manifest"].get("memory") or {}
    return {}


def _hnsw_bytes(result: dict) -> float | None:
    return _hnsw_memory(result).get("bytesPerVector")


def summary_table(result: dict) -> list[str]:
    """The issue-14 view: unseen recall vs the builder's claim and bound, memory per vector, time vs raw."""
    hnsw, hnsw_total = _hnsw_bytes(result), _hnsw_memory(result).get("total")
    lines = [
        "| type | factory, search | recall@10 on unseen queries | builder's claim | its 95% lower bound | p99 ms | "
        "bytes/vector (builder's accounting) | x HNSW32 | total bytes (codes / graph / refine / ids / other) | "
        "total x HNSW32 | RSS gained at load / vector | builder s / raw s | builder train+add s / raw | raw process s | "
        "CPU s: builder process / raw build |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["types"]:
        raw, b = row["raw"], row["builder"]
        m, held = b["manifest"], b["held_out"]
        own, mem = m["measurements"], m.get("memory") or {}
        bpv, total = mem.get("bytesPerVector"), mem.get("total")
        split = " / ".join(_f(mem.get(part), ",") for part in ("codes", "graph", "refine", "ids", "other"))
        rss = held.get("rss_delta_bytes")
        n = m.get("vectors") or 1
        ratio = b["seconds"] / raw["seconds"] if raw.get("seconds") else None
        core = m["timings"]["trainSeconds"] + m["timings"]["addSeconds"]
        lines.append(
            f"| {row['type']} | `{row['factory']}` {_params(m['searchParameters'])} | {held['recall_at_10']:.3f} | "
            f"{own['recallAtK']:.3f} | {_f(own.get('recallLowerBound'), '.3f')} | {held['p99_ms']:.3f} | {_f(bpv, ',.0f')} | "
            f"{_f(bpv / hnsw if bpv and hnsw else None, '.2f')} | {_f(total, ',')} ({split}) | "
            f"{_f(total / hnsw_total if total and hnsw_total else None, '.2f')} | "
            f"{_f(rss / n if rss is not None else None, ',.0f')} | "
            f"{b['seconds']:.1f} / {_f(raw.get('seconds'), '.1f')} = {_f(ratio, '.2f')} | "
            f"{core:.1f} = {_f(core / raw['seconds'] if raw.get('seconds') else None, '.2f')} | "
            f"{_f(raw.get('process_seconds'), '.1f')} | "
            f"{_f(b.get('cpu_seconds'), '.1f')} / {_f(raw.get('cpu_seconds'), '.1f')} = "
            f"{_f(b['cpu_seconds'] / raw['cpu_seconds'] if b.get('cpu_seconds') and raw.get('cpu_seconds') else None, '.2f')} |"
        )
    return lines


def markdown(result: dict) -> str:
    d, mach = result["data"], result["machine"]
    coll, emb = d.get("collect", {}), d.get("embed", {})
    neural = d.get("dataset") == "minilm"
    kind = "all-MiniLM-L6-v2 sentence embeddings" if neural else "LSA text embeddings"
    out = [
        f"# Builder benchmark: {result['n']:,} x {result['dim']} {kind}, {mach['cores']} cores, faiss {mach['faiss']}",
        "",
        *(["**Partial results: the run was still going (or was stopped) after the rows below.**", ""]
          if result.get("partial") else []),
        *summary_table(result),
        "",
        "- bytes/vector: the manifest's `memory` (FAISS's own arrays: codes, graph, re-rank codes, ids incl. ids.npy,",
        "  centroids/codebooks) / vectors; RSS gained at load: this process's VmRSS after `read_index` + `np.load(ids)`",
        "  minus before, per vector (what serving holds). Time: builder end to end (process wall time: imports, load,",
        "  checks, train, add, ground truth, tuning, measuring, upload) / raw `index_factory -> train -> add` (build only);",
        "  then the builder's own train+add stages / the same raw figure; raw process s: the raw worker's whole process.",
        "  CPU s: user+system CPU seconds of the builder's whole process (wait4 rusage) / of the raw build (process_time",
        "  around index_factory -> train -> add): less sensitive than wall time to other load on the shared machine.",
        "",
        *table(result),
        "",
        "- **raw faiss**: `index_factory(factory)` -> `train` -> `add` on the same vectors in a fresh process, with the",
        "  factory and parameters the builder's manifest records. **builder**: the `faiss-index-builder` console script end",
        "  to end (load + checks, train, add, its own recall/latency measurement, S3 upload to moto on 127.0.0.1, manifest).",
        f"- recall@10 and p99 are measured here the same way for every index: {result['queries']} held-out queries that no",
        "  index contains, exact ground truth from `IndexFlatL2`, one single-query search per query, with the manifest's search",
        "  parameters. In parentheses: the recall the builder measured itself, on validation rows sampled from the source",
        "  and held out of the index while it measured (appended afterwards), so it should agree with the column before it.",
        f"- Builder specs: default parameters, `validation.k=10`, `tuning.targetRecall={result['target_recall']}` (not on Flat),",
        f"  `build.maxMemory={result['max_memory']}`. Peak RSS is each process's own `VmHWM` (interpreter + faiss + touched",
        "  pages of the memory-mapped data + index).",
        f"- autofaiss: {result['autofaiss'].get('note', '')}; `build_index(max_index_memory_usage={result['max_memory'].replace('i', '')},",
        "  max_index_query_time_ms=10, min_nearest_neighbors_to_retrieve=10)`. autofaiss has no recall target: it picks the",
        "  index for the memory budget, then the search parameter that maximises recall within the latency budget, so it",
        "  trades its whole 10 ms for recall where the builder stops at its own defaults/target."
        + (f" Error: {result['autofaiss']['error']}" if "error" in result["autofaiss"] else ""),
    ]
    out += previous_section(result)
    if result["skipped"]:
        out += ["", "Skipped:", *[f"- {s['type']}: {s['why']}" for s in result["skipped"]]]
    if neural:
        out += ["", "## Data", "", f"{d.get('kind')}: {d.get('n'):,} sentences sampled (seed {d.get('seed')}) from "
                f"{d.get('sentences_available'):,} distinct sentences of {d.get('text_units'):,} text units under "
                f"{d.get('corpus_roots') or d.get('corpus_root')}; truncated at {d.get('max_tokens')} word pieces; torch {d.get('torch')}; "
                f"encoding took {d.get('encode_seconds')} s. The last {result['queries']:,} rows are the unseen queries. "
                f"Examples: {d.get('examples', [])[:3]}.", "",
                f"Builder code: {_code(result.get('builder_code'))}.", "",
                f"Machine: {mach['platform']}, Python {mach['python']}, numpy {mach['numpy']}; other processes shared the CPU.",
                f"Whole benchmark: {result['bench_seconds']:.0f} s. Numbers are for this machine and run only."]
        return "\n".join(out) + "\n"
    out += [
        "",
        "## Data",
        "",
        f"{d.get('kind')}: {coll.get('documents', '?'):,} distinct text units (docstring paragraphs, comment blocks,",
        f"paragraphs of .rst/.txt/.md) from {', '.join(d.get('roots', []))}; by kind {coll.get('by_kind')}.",
        f"{result['n'] + result['queries']:,} sampled (seed {d.get('seed')}) -> TF-IDF {emb.get('tfidf_shape')} -> randomized",
        f"TruncatedSVD to {result['dim']} (explained variance {emb.get('svd_explained_variance')}) -> L2-normalised float32.",
        "Topics (HTTP, dates, numerics, API models, licences, tests ...) share vocabulary, so documents cluster unevenly,",
        "as real embeddings do; it is not a neural embedding, so compare index types and ratios, not absolute recall.",
        f"Generation took {d.get('generation_seconds')} s (text collection {coll.get('collect_seconds')} s, once per machine;",
        f"TF-IDF {emb.get('tfidf_seconds')} s, SVD {emb.get('svd_seconds')} s); cached under ~/.cache/faiss-index-operator/bench/.",
        "",
        f"Builder code: {_code(result.get('builder_code'))}.",
        "",
        f"Machine: {mach['platform']}, Python {mach['python']}, numpy {mach['numpy']}; other processes shared the CPU.",
        f"Whole benchmark: {result['bench_seconds']:.0f} s. Numbers are for this machine and run only.",
    ]
    return "\n".join(out) + "\n"


def previous_summary(path: Path) -> dict | None:
    """Per type, what the run saved at ``path`` (the one this run replaces) chose and measured."""
    if not path.exists():
        return None
    old = json.loads(path.read_text())
    types = {}
    for row in old.get("types", []):
        m = row["builder"]["manifest"]
        types[row["type"]] = {"search": m["searchParameters"], "own": m["measurements"]["recallAtK"],
                              "held_out": row["builder"]["held_out"]["recall_at_10"],
                              "p99_ms": row["builder"]["held_out"]["p99_ms"], "seconds": row["builder"]["seconds"]}
    return {"head": (old.get("builder_code") or {}).get("head"), "n": old.get("n"), "types": types}


def previous_section(result: dict) -> list[str]:
    """Before/after per type against the run this one replaced (same data size only)."""
    prev = result.get("previous")
    if not prev or prev.get("n") != result["n"]:
        return []
    lines = ["", f"## Compared with the previous run (builder at {str(prev.get('head'))[:10]})", "",
             "| type | search before -> now | builder's own recall before -> now | recall on held-out queries before -> now "
             "| p99 ms before -> now | builder s before -> now |", "|---|---|---|---|---|---|"]
    for row in result["types"]:
        before = prev["types"].get(row["type"])
        if before is None:
            continue
        m, held = row["builder"]["manifest"], row["builder"]["held_out"]
        lines.append(
            f"| {row['type']} | {_params(before['search']) or '–'} -> {_params(m['searchParameters']) or '–'} | "
            f"{_f(before['own'], '.3f')} -> {m['measurements']['recallAtK']:.3f} | "
            f"{_f(before['held_out'], '.3f')} -> {_f(held['recall_at_10'], '.3f')} | "
            f"{_f(before['p99_ms'], '.3f')} -> {_f(held['p99_ms'], '.3f')} | {before['seconds']:.1f} -> {row['builder']['seconds']:.1f} |"
        )
    return lines


def _code(code: dict | None) -> str:
    if not code:
        return "unknown"
    dirty = f", {len(code['uncommitted_changes'])} uncommitted changes in the checkout" if code["uncommitted_changes"] else ""
    via = f", via PYTHONPATH={code['pythonpath']}" if code.get("pythonpath") else ""
    return f"`{code['path']}`{via} (checkout at {code['head'][:10]}{dirty})"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names, raw_s, builder_s = [], [], []
    for i, row in enumerate(result["types"]):
        c = colors[i % len(colors)]
        raw, held = row["raw"], row["builder"]["held_out"]
        if "p99_ms" in raw:
            left.scatter(raw["p99_ms"], raw["recall_at_10"], marker="o", color=c, s=60)
        left.scatter(held["p99_ms"], held["recall_at_10"], marker="^", color=c, s=60, label=row["type"])
        names.append(row["type"])
        raw_s.append(raw.get("seconds", NAN))
        builder_s.append(row["builder"]["seconds"])
    a = result["autofaiss"]
    if "p99_ms" in a:
        left.scatter(a["p99_ms"], a["recall_at_10"], marker="*", color="black", s=150, label=f"autofaiss {a.get('factory')}")
    left.set_xscale("log")
    left.set_xlabel("single-query p99 latency (ms, log)")
    left.set_ylabel(f"recall@10 on {result['queries']} held-out queries")
    left.set_title("recall vs p99 (o raw faiss, ^ builder artifact)")
    left.grid(True, alpha=0.3)
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=8)
    x = list(range(len(names)))
    right.bar([i - 0.2 for i in x], raw_s, width=0.4, label="raw faiss train+add")
    right.bar([i + 0.2 for i in x], builder_s, width=0.4, label="builder end to end")
    if "seconds" in a:
        names.append("autofaiss")
        right.bar([len(x)], [a["seconds"]], width=0.4, color="black", label="autofaiss build_index")
        x.append(len(x))
    right.set_xticks(x, names)
    right.set_ylabel("seconds")
    right.set_title("build time")
    right.legend(fontsize=8)
    fig.suptitle(f"{result['n']:,} x {result['dim']} LSA text embeddings, {result['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict, results: Path, stem: str = "builder") -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = markdown(result)
    (results / f"{stem}.md").write_text(text)
    plot(result, results / f"{stem}.png")
    print(text, flush=True)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results"
    write(json.loads((folder / "builder.json").read_text()), folder)
