"""Tables and a figure for ``bench/scale_bench.py``: results/scale.{json,md,png}."""

from __future__ import annotations

import json
from pathlib import Path

MB = 2**20


def _peak(pods: dict, prefix: str) -> float:
    values = [p["peak_rss_bytes"] for name, p in pods.items() if name.startswith(prefix)]
    return max(values) / MB if values else 0.0


def rows(result: dict) -> list[dict]:
    out = []
    for run in result["runs"]:
        pods, mem = run["build"]["pods"], run["serve"]["peak_rss_bytes"]
        load = run["serve"]["load"]
        slice_pods = {k: v for k, v in pods.items() if k.startswith(("shard-", "unsharded"))}
        out.append({
            "shards": run["shards"],
            "build_wall_s": run["build"]["wall_seconds"],
            "build_cpu_s": sum(p["cpu_seconds"] for p in pods.values()),
            "train_peak_mb": _peak(pods, "train"),
            "slice_peak_mb": max(p["peak_rss_bytes"] for p in slice_pods.values()) / MB,
            "finalize_peak_mb": _peak(pods, "finalize"),
            "serving_pod_peak_mb": max(v for k, v in mem.items() if "fanout" not in k) / MB,
            "fanout_peak_mb": next((v for k, v in mem.items() if "fanout" in k), 0) / MB,
            "recall_at_10": run["serve"]["recall_at_10"],
            "qps": load.get("qps") or 0.0, "p50_ms": load.get("p50_ms") or 0.0, "p99_ms": load.get("p99_ms") or 0.0,
            "failed": load.get("failed", 0),
        })
    return out


def markdown(result: dict) -> str:
    table = rows(result)
    base = table[0]
    lines = [
        f"# Scale-out benchmark: {result['vectors']:,} x {result['dimension']} vectors, 1 vs 2 vs 4 shards",
        "",
        f"`python bench/scale_bench.py` (started {result['started']}, {result['total_seconds'] / 60:.0f} min). "
        f"Index {result['index']}, `shardMerge: Never` (the fan-out serves). {result['queries']} held-out queries "
        f"(not in the index) against exact search over all vectors. Load: {result['clients']} concurrent clients, "
        f"single-vector requests, {result['seconds']:.0f} s. Slice pods run {result['parallel_slice_pods']} at a time "
        f"on a {result['machine']['cpus']}-core machine shared with other work (load average at the end "
        f"{result['machine']['loadavg_at_end'][0]:.1f}); every process is a real builder / server process, "
        "peak RSS is each process's kernel high-water mark (VmHWM).",
        "",
        "| shards | build wall s | build CPU s | train pod MB | slice pod MB (max) | finalize pod MB | serving pod MB (max) | fan-out MB | recall@10 | QPS | p50 ms | p99 ms | failed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        lines.append(
            f"| {r['shards']} | {r['build_wall_s']:.0f} | {r['build_cpu_s']:.0f} | {r['train_peak_mb']:.0f} | "
            f"{r['slice_peak_mb']:.0f} | {r['finalize_peak_mb']:.0f} | {r['serving_pod_peak_mb']:.0f} | "
            f"{r['fanout_peak_mb']:.0f} | {r['recall_at_10']:.4f} | {r['qps']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['failed']} |")
    lines += ["", "Ratios vs the unsharded pod of the same run:", ""]
    for r in table[1:]:
        lines.append(
            f"- {r['shards']} shards: slice pod peak {r['slice_peak_mb'] / base['slice_peak_mb']:.2f}x, serving pod peak "
            f"{r['serving_pod_peak_mb'] / base['serving_pod_peak_mb']:.2f}x, build wall {r['build_wall_s'] / base['build_wall_s']:.2f}x, "
            f"QPS {r['qps'] / base['qps']:.2f}x, p99 {r['p99_ms'] / base['p99_ms']:.2f}x, recall@10 "
            f"{r['recall_at_10'] - base['recall_at_10']:+.4f}")
    lines += ["", "Unsharded row: build = one ordinary builder pod; serving = one `faiss-index-server` (no fan-out).",
              "Sharded rows: build = train pod + slice pods + finalize pod; serving = one shard server per shard + one fan-out; "
              "QPS and p99 are through the fan-out. On one 2-core machine all shard servers and the fan-out share the same "
              "cores, so throughput here measures the fan-out's overhead, not the capacity N nodes would add.", ""]
    return "\n".join(lines + slice_reads(result))


def slice_reads(result: dict) -> list[str]:
    """Source bytes fetched per slice pod (``bench/scale_slice_reads.py``), if measured."""
    reads = result.get("slice_reads")
    if not reads:
        return []
    whole = reads["source_bytes_whole"]
    lines = [
        "## Source bytes fetched per slice pod",
        "",
        f"`{reads['command']}` (started {reads['started']}): {reads['vectors']:,} x {reads['dimension']} float32 as "
        f"one S3 `.npy` object plus an ids object ({whole / 1e6:.1f} MB together, moto server), Flat shards. "
        "Bytes are what each slice pod's S3 responses carried (the manifest's `sharding.slices[].sourceBytes`). "
        "Before per-slice reads every slice pod downloaded both objects whole: "
        f"{whole / 1e6:.1f} MB per pod.",
        "",
        "| shards | rule | MB fetched per slice (each) | share of the source | ideal 1/N | slice pod peak MB (max) |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for run in reads["runs"]:
        got = [s["source_bytes"] for s in run["slices"]]
        lines.append(
            f"| {run['shards']} | {run['rule']} | {', '.join(f'{b / 1e6:.2f}' for b in got)} | "
            f"{max(got) / whole:.4f} | {1 / run['shards']:.4f} | "
            f"{max(s['peak_rss_bytes'] for s in run['slices']) / 2**20:.0f} |")
    lines.append("")
    return lines


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = rows(result)
    shards = [str(r["shards"]) for r in table]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].bar(shards, [r["slice_peak_mb"] for r in table], label="builder pod (slice)")
    axes[0].plot(shards, [r["serving_pod_peak_mb"] for r in table], "o-", color="C1", label="serving pod (shard)")
    axes[0].set(title="peak RSS per pod (MB)", xlabel="shards")
    axes[0].legend()
    axes[1].bar(shards, [r["build_wall_s"] for r in table])
    axes[1].set(title="build wall time (s)", xlabel="shards")
    axes[2].bar(shards, [r["qps"] for r in table], label="QPS")
    ax2 = axes[2].twinx()
    ax2.plot(shards, [r["p99_ms"] for r in table], "o-", color="C3", label="p99 ms")
    axes[2].set(title="QPS (bars) and p99 ms (line) through the front", xlabel="shards")
    fig.suptitle(f"{result['vectors']:,} x {result['dimension']}, {result['index']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_reports(result: dict, out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    (out / f"{stem}.md").write_text(markdown(result))
    try:
        figure(result, out / f"{stem}.png")
    except ImportError:  # matplotlib comes with bench/requirements.txt
        pass
