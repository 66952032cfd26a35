"""Writing ``bench/results/serving.{json,md,png}`` from the serving benchmark's result dict.

Kept apart from the measuring code so the tables and plots can be regenerated from a saved
``serving.json`` (``python bench/serving_report.py [folder]``) without re-running anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _f(x, fmt: str = ".2f") -> str:
    return "–" if x is None or x != x else format(x, fmt)


def _mib(n) -> str:
    return "–" if n is None else f"{n / 2**20:,.0f} MiB"


_VARIANT_NAMES = {"json": "JSON", "binary": "binary", "json_unbatched": "JSON, batching off",
                  "binary_unbatched": "binary, batching off"}


def throughput_table(tp: dict) -> list[str]:
    if "variants" not in tp:  # a result of the previous benchmark (JSON only)
        return _throughput_table_v1(tp)
    variants = tp["variants"]
    lines = ["| request | clients | raw FAISS req/s | " + " | ".join(f"{_VARIANT_NAMES[v]} req/s (x raw)" for v in variants)
             + " | raw p50 / p99 ms | JSON p50 / p99 ms | binary p50 / p99 ms | failed |",
             "|---|---|---|" + "---|" * len(variants) + "---|---|---|---|"]
    for c in tp["cells"]:
        r, vs = c["raw"], c["variants"]
        label = "1 vector" if c["vectors_per_request"] == 1 else f"batch of {c['vectors_per_request']}"
        cols = [f"{vs[v]['qps']:,.0f} (**{c['ratio_qps'][v]:.2f}x**)" if v in vs else "same path as batching on" for v in variants]
        failed = sum(vs[v]["failed"] for v in vs)
        lines.append(f"| {label} | {c['clients']} | {r['qps']:,.0f} | " + " | ".join(cols) +
                     f" | {r['p50_ms']:.3f} / {r['p99_ms']:.2f} | {vs['json']['p50_ms']:.2f} / {vs['json']['p99_ms']:.2f} | "
                     f"{vs['binary']['p50_ms']:.2f} / {vs['binary']['p99_ms']:.2f} | {failed} |")
    return lines


def _throughput_table_v1(tp: dict) -> list[str]:
    lines = ["| request | clients | HTTP req/s (vectors/s) | raw FAISS req/s (vectors/s) | QPS HTTP/raw | HTTP p50 / p99 ms | raw p50 / p99 ms | p50 ratio | p99 ratio | failed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in tp["cells"]:
        h, r = c["http"], c["raw"]
        label = "1 vector" if c["vectors_per_request"] == 1 else f"batch of {c['vectors_per_request']}"
        lines.append(
            f"| {label} | {c['clients']} | {h['qps']:,.0f} ({h['vectors_per_second']:,.0f}) | {r['qps']:,.0f} ({r['vectors_per_second']:,.0f}) | "
            f"{c['ratio_qps_http_over_raw']:.2f}x | {h['p50_ms']:.2f} / {h['p99_ms']:.2f} | {r['p50_ms']:.3f} / {r['p99_ms']:.3f} | "
            f"{c['ratio_p50_http_over_raw']:.1f}x | {c['ratio_p99_http_over_raw']:.1f}x | {h['failed']} |")
    return lines


def swap_comparison(sw: dict, base: dict | None) -> list[str]:
    if not base:
        return []
    lines = ["| loader | steady p99 ms | swap-window p99 ms | **p99 swap / steady** | swap-window max ms | failed / requests | mean pointer write -> serving s |",
             "|---|---|---|---|---|---|---|"]
    for name, x in (("download + sha256 in a nice-10 child process (new default)", sw),
                    ("download + sha256 in the serving process (previous, baseline)", base)):
        serve = [s["write_to_serving_seconds"] for s in x["swaps"]]
        lines.append(f"| {name} | {_f(x['steady'].get('p99_ms'))} | {_f(x['swap'].get('p99_ms'))} | "
                     f"**{_f(x['ratio_p99_swap_over_steady'])}x** | {_f(x['swap'].get('max_ms'))} | {x['failed_total']} / "
                     f"{x['requests_total']:,} | {_f(sum(serve) / len(serve) if serve else None)} |")
    return lines


def swap_tables(sw: dict) -> list[str]:
    st, sp = sw["steady"], sw["swap"]
    lines = ["| window | requests | p50 ms | p99 ms | p99.9 ms | max ms | failed |", "|---|---|---|---|---|---|---|"]
    for name, s in (("steady (between swaps)", st), ("swap (pointer write -> serving + tail)", sp)):
        lines.append(f"| {name} | {s.get('requests', 0):,} | {_f(s.get('p50_ms'))} | {_f(s.get('p99_ms'))} | "
                     f"{_f(s.get('p999_ms'))} | {_f(s.get('max_ms'))} | {s.get('failed', 0)} |")
    lines += ["", (f"p99 swap / steady: **{_f(sw['ratio_p99_swap_over_steady'])}x**; failed requests over the whole loop: "
                   f"**{sw['failed_total']}** of {sw['requests_total']:,}" + (f" ({sw['errors']})" if sw["errors"] else "") + "."), "",
              "| swap | to version | pointer write -> serving s | load s (download+verify+read) | warm-up s | read mode | requests in window |",
              "|---|---|---|---|---|---|---|"]
    for i, s in enumerate(sw["swaps"], 1):
        lines.append(f"| {i} | `{s['to']}` | {s['write_to_serving_seconds']:.2f} | {_f(s['load_seconds'], '.2f')} | "
                     f"{_f(s['warmup_seconds'], '.3f')} | {s['read_mode']} | {s['requests_in_window']:,} |")
    return lines


def memory_table(sw: dict) -> list[str]:
    lines = [f"Index file on disk: {sw['index_file_bytes']:,} bytes ({_mib(sw['index_file_bytes'])}); the whole version",
             f"(index + ids.npy + manifest files): {_f(sw.get('version_size_bytes'), ',')} bytes. The same server process with no",
             f"version loaded: {_mib(sw.get('rss_without_index_bytes'))} RSS.", "",
             "| swap | RSS steady | RSS peak (anon + file-backed at peak) | RSS after | (steady - no index) / index | **(peak - no index) / index** | peak / index |",
             "|---|---|---|---|---|---|---|"]
    for i, s in enumerate(sw["swaps"], 1):
        lines.append(f"| {i} | {_mib(s['rss_steady_bytes'])} | {_mib(s['rss_peak_bytes'])} ({_mib(s['rss_anon_at_peak_bytes'])} + "
                     f"{_mib(s['rss_file_at_peak_bytes'])}) | {_mib(s['rss_after_bytes'])} | {_f(s.get('versions_steady_over_index_file'))}x | "
                     f"**{_f(s.get('versions_peak_over_index_file'))}x** | {_f(s['peak_over_index_file'])}x |")
    return lines


def propagation_table(pr: dict) -> list[str]:
    names = sorted({n for t in pr["trials"] for n in t["replicas"]})
    lines = ["| trial | how replicas learn | to version | " + " | ".join(names) + " | max | max - slowest load |",
             "|---|---|---|" + "---|" * len(names) + "---|---|"]
    for i, t in enumerate(pr["trials"], 1):
        cells = [f"{t['replicas'][n]['seconds']:.2f} s (load {_f(t['replicas'][n]['load_seconds'])})" if n in t["replicas"] else "not seen"
                 for n in names]
        loads = [t["replicas"][n]["load_seconds"] or 0 for n in names if n in t["replicas"]]
        over = t["max_seconds"] - max(loads) if t["max_seconds"] is not None and loads else None
        how = {"notify": "POST /v1/refresh", "poll": "poll only"}.get(t.get("mode", "poll"), t.get("mode"))
        lines.append(f"| {i} | {how} | `{t['to']}` | " + " | ".join(cells) + f" | **{_f(t['max_seconds'])} s** | {_f(over)} s |")
    return lines


def peers_table(peers: list[dict], target: float) -> list[str]:
    ref = next((p["matched"] for p in peers if p["peer"] == "faiss" and p.get("matched")), None)
    lines = [f"| peer | version | build s | index RSS | peak RSS | ef at recall >= {target} | recall@10 | single-query QPS | p50 / p99 ms | batch QPS | single QPS vs faiss |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in peers:
        if "error" in p:
            lines.append(f"| {p['peer']} | – | – | – | – | – | – | – | – | – | {p['error']} |")
            continue
        m = p["matched"]
        flag = "" if m["reached_target"] else " (target not reached: best point)"
        ratio = m["single_qps"] / ref["single_qps"] if ref else None
        lines.append(f"| {p['peer']} | {p['version']} | {p['build_seconds']:.1f} | {_mib(p['index_rss_bytes'])} | {_mib(p['peak_rss_bytes'])} | "
                     f"{m['ef']}{flag} | {m['recall_at_10']:.3f} | {m['single_qps']:,.0f} | {m['single_p50_ms']:.2f} / {m['single_p99_ms']:.2f} | "
                     f"{m['batch_qps']:,.0f} | {_f(ratio, '.2f' if ratio is None or ratio >= 0.1 else '.3f')}x |")
    return lines


def markdown(r: dict) -> str:
    mach = r["machine"]
    tp, sw, pr = r["throughput"], r["hot_swap"], r["propagation"]
    out = [
        (f"# Serving benchmark: {r['n']:,} x {r['dim']} LSA text embeddings, HNSW32 "
         f"{', '.join(f'{k}={v}' for k, v in tp['search_parameters'].items())}, {mach['cores']} cores"),
        "",
        f"Two versions of one index were built by `faiss-index-builder` (HNSW, m=32, efConstruction=200, efSearch={r['ef_search']};",
        f"{r['versions'][0]['builder_seconds']:.0f} s and {r['versions'][1]['builder_seconds']:.0f} s end to end) from the same file source,",
        "uploaded to a moto S3 server (own process, 127.0.0.1) and served by `faiss-index-server` processes following the",
        f"serving pointer (`FAISS_POLL_SECONDS={r['poll_seconds']}`, the server's default). Queries: {r['queries']:,} held-out rows",
        "that no index contains. Every number is compared with a baseline from the same run.",
        "",
        "## 1. Throughput and latency: HTTP vs raw FAISS in process",
        "",
        *throughput_table(tp),
        "",
        "- HTTP: closed-loop aiohttp clients on keep-alive connections, `POST /v1/search` with k=10, bodies encoded in",
        f"  advance; {r['cell_seconds']} s per cell after {r['warmup_seconds']} s warm-up, as {r.get('rounds', 1)} interleaved slices of raw and",
        "  each HTTP variant (so background load hits every side of a ratio alike). Raw: the same index file read by FAISS in the",
        "  benchmark process with the manifest's search parameters, N Python threads calling `index.search` (FAISS releases the GIL).",
        "- Variants: **JSON** = `{\"vectors\": [[...]], \"k\": 10}` answered in JSON (the previous benchmark's only column);",
        "  **binary** = raw little-endian float32 rows (`Content-Type: application/octet-stream`, `?k=10&d=<dim>`) answered",
        "  as int64 ids + float32 distances (`Accept: application/octet-stream`). Both on the server's default configuration,",
        "  which batches concurrent single-vector requests (`FAISS_BATCH_MAX=32`, window 0 ms, 2 batches in flight);",
        "  **batching off** = a second server process with `FAISS_BATCH_MAX=1`, measured in the same slices.",
        f"- The server's answers equal raw FAISS's top-10 on **{tp['same_answers_fraction']:.1%}** of {tp['check_queries']} queries",
        "  (raw positions mapped through the version's ids.npy).",
        "- The ratio is what HTTP, parsing and validation, the executor hop and the runtime's routing/metrics cost per",
        "  request. The client runs on the same cores as the server, so it takes part of the CPU.",
        *r.get("notes", {}).get("throughput", []),
        "",
        f"## 2. Hot swap: p99 while the pointer moves ({sw['clients']} clients, single-vector requests)",
        "",
        *swap_comparison(sw, r.get("hot_swap_baseline")),
        "",
        "Detail of the new loader's run:",
        "",
        *swap_tables(sw),
        "",
        f"- A swap window runs from the pointer write until `/v1/status` reports the new stable version, plus {sw['tail_seconds']} s;",
        f"  steady windows are the stretches between swaps ({sw['settle_seconds']} s after each swap window excluded). The",
        "  replica downloads and checksums the new version in a child process at nice 10 (baseline: in a thread of the",
        "  serving process, as before), then reads (mmap) and warms it in a background thread while it keeps serving the",
        "  old one, and swaps one reference; the window's latency is the cost of that work sharing the CPU. Both servers",
        "  ran one after the other against the same moto process, which serves the download from the same 2 cores.",
        *r.get("notes", {}).get("hot_swap", []),
        f"- Answered by version: {sw['answered_by']}.",
        "",
        f"## 3. Propagation: pointer write -> all {pr['replicas']} replicas serving the new version",
        "",
        *propagation_table(pr),
        "",
        f"- Each replica polls the pointer every **{pr['poll_seconds']} s** (`FAISS_POLL_SECONDS`); the benchmark polls each",
        f"  replica's `/v1/status` every {pr['status_poll_interval_seconds'] * 1000:.0f} ms from its own thread. \"POST /v1/refresh\" trials",
        "  call each replica's refresh endpoint right after the write, as the operator does (faiss_operator/notify.py);",
        "  expected time = the load (download, sha256, read, warm-up). \"poll only\" trials: up to one poll interval + the load.",
        "  Replicas load at the same time on the same cores. \"max - slowest load\" is the time not spent loading.",
        *r.get("notes", {}).get("propagation", []),
        "",
        "## 4. Server memory during a swap vs the index size on disk",
        "",
        *memory_table(sw),
        "",
        "- RSS (VmRSS) of the serving process sampled from /proc every 20 ms during section 2. Peak is the highest sample",
        "  between the pointer write and 2 s after the swap window. \"no index\" is the same process measured before the",
        "  first pointer was written, so (RSS - no index) is what the loaded version(s) cost: one version in steady state,",
        "  the old and the new version at the peak of a swap.",
        "- `readMode` mmap: FAISS maps the index file; touched pages count as file-backed RSS (they are page cache, which",
        "  the kernel can drop and re-read, unlike anonymous memory). File-backed RSS also holds the libraries' code.",
        "",
        f"## 5. Peers at matched recall (recall@10 >= {r['target_recall']}, same {r['n']:,} x {r['dim']} data)",
        "",
        *(peers_table(r["peers"], r["target_recall"]) if r["peers"] else
          ["Not rerun in this run (`--peers ''`): the peers do not depend on the serving code; the previous run's",
           "table (100,000 x 384) is in git history of this file."]),
        "",
        f"- All peers: HNSW with M=32, efConstruction=200, L2, built in a fresh process each; ef swept over {r['efs']};",
        f"  recall@10 on {r['queries']:,} held-out queries vs exact search; single-query QPS over the first {r['single_queries']} queries,",
        "  one call each; batch QPS = all queries in one call. Reported at the smallest ef reaching the target.",
        "- Index RSS = RSS after the build with the input array freed, minus RSS after importing the library.",
        "- faiss and hnswlib are in-process libraries; Chroma (PersistentClient, Rust core with an hnswlib fork) and",
        "  Milvus Lite (3.x: pure Python around FAISS HNSW per segment, behind an in-process gRPC server) are databases",
        "  with their own API layers, so their QPS includes those. Chroma applies a new ef_search only on reload, so each",
        "  of its sweep points reopens the persisted collection.",
        "",
        "## Run",
        "",
        f"Data: {r['data'].get('kind')}, seed {r['data'].get('seed')} (bench/data.py). Machine: {mach['platform']}, Python {mach['python']},",
        f"faiss {mach['faiss']}, numpy {mach['numpy']}, aiohttp {mach['aiohttp']}; load average (1 min) after each phase:",
        f"{', '.join(f'{k} {v:.1f}' for k, v in r['load_average'].items())} on {mach['cores']} cores: other engineers' tests shared the CPU,",
        "so absolute numbers are noisy; compare ratios measured side by side.",
        f"Serving code: {_code(r.get('code'))}. Whole benchmark: {r['bench_seconds']:.0f} s.",
    ]
    return "\n".join(out) + "\n"


def _code(code: dict | None) -> str:
    if not code:
        return "unknown"
    dirty = f", {len(code['uncommitted_changes'])} uncommitted changes under index_serving/ index_builder/ indexops_*" if code["uncommitted_changes"] else ""
    changed = ", changed during the run" if code.get("changed_during_run") else ""
    return f"checkout at {code['head'][:10]}{dirty}{changed}"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((a, b), (c, d)) = plt.subplots(2, 2, figsize=(14, 10))
    for p in r["peers"]:
        if "sweep" in p:
            xs = [s["recall_at_10"] for s in p["sweep"]]
            line = a.plot(xs, [s["single_qps"] for s in p["sweep"]], marker="o", ms=3, label=p["peer"])[0]
            m = p["matched"]
            a.scatter([m["recall_at_10"]], [m["single_qps"]], s=90, facecolors="none", edgecolors=line.get_color())
    if not r["peers"]:
        a.text(0.5, 0.5, "peers not rerun in this run", ha="center", va="center", transform=a.transAxes)
    a.axvline(r["target_recall"], color="grey", ls="--", lw=1)
    a.set_yscale("log")
    a.set_xlabel("recall@10 (held-out queries)")
    a.set_ylabel("single-query QPS (1 client, log)")
    a.set_title("peers: QPS vs recall (ef sweep; circle = matched point)")
    a.grid(True, alpha=0.3)
    if a.get_legend_handles_labels()[0]:
        a.legend(fontsize=8)

    sw = r["hot_swap"]
    pts = [x / 100 for x in [*range(0, 100), 99.5, 99.9, 100]]
    for name, key in (("steady", "cdf_steady_ms"), ("swap window", "cdf_swap_ms")):
        if sw[key]:
            b.plot(sw[key], pts[: len(sw[key])], label=name)
    b.set_xscale("log")
    b.set_xlabel("request latency ms (log)")
    b.set_ylabel("fraction of requests")
    b.set_title(f"hot swap: latency CDF, {sw['clients']} clients")
    b.grid(True, alpha=0.3)
    b.legend(fontsize=8)

    if sw["latency_timeline"]:
        t, p50, mx = zip(*sw["latency_timeline"])
        c.plot(t, mx, lw=0.8, color="tab:red", label="max latency per 250 ms")
        c.plot(t, p50, lw=0.8, color="tab:blue", label="p50 latency per 250 ms")
    c.set_yscale("log")
    c.set_xlabel("seconds")
    c.set_ylabel("ms (log)")
    for a0, b0 in sw["windows"]["swap"]:
        c.axvspan(a0, b0, color="orange", alpha=0.2)
    c2 = c.twinx()
    if sw["rss_timeline"]:
        tm, rss, _, _ = zip(*sw["rss_timeline"])
        c2.plot(tm, [x / 2**20 for x in rss], color="black", lw=1, label="server RSS MiB")
        c2.axhline(sw["index_file_bytes"] / 2**20, color="black", ls=":", lw=1, label="index file size")
    c2.set_ylabel("MiB")
    c.set_title("swaps (shaded): latency and server RSS")
    c.legend(fontsize=7, loc="upper left")
    c2.legend(fontsize=7, loc="upper right")

    cells = r["throughput"]["cells"]
    labels = [f"{'1' if x['vectors_per_request'] == 1 else x['vectors_per_request']}v c{x['clients']}" for x in cells]
    xs = range(len(cells))
    series = [("raw FAISS in process", lambda x: x["raw"]), ("HTTP JSON", lambda x: x["http"])]
    if "variants" in r["throughput"]:
        series += [("HTTP binary", lambda x: x["variants"]["binary"]),
                   ("HTTP JSON, batching off", lambda x: x["variants"].get("json_unbatched"))]
    width = 0.8 / len(series)
    for j, (name, pick) in enumerate(series):
        d.bar([i - 0.4 + width * (j + 0.5) for i in xs], [(pick(x) or {}).get("vectors_per_second") or 0 for x in cells],
              width=width, label=name)
    d.set_xticks(list(xs), labels, fontsize=8)
    d.set_yscale("log")
    d.set_ylabel("vectors searched per second (log)")
    d.set_title("throughput: request size (v = vectors) and clients (c)")
    d.legend(fontsize=8)
    fig.suptitle(f"serving benchmark: {r['n']:,} x {r['dim']}, {r['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(result: dict, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "serving.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    text = markdown(result)
    (results / "serving.md").write_text(text)
    plot(result, results / "serving.png")
    print(text, flush=True)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results"
    write(json.loads((folder / "serving.json").read_text()), folder)
