"""Source bytes fetched per slice pod of a sharded build, from a real S3 API (moto server).

The same 1,000,000 x 64 float32 vectors as ``bench/scale_bench.py`` (plus an ids object)
are put into S3 as one ``.npy`` object, then built as 2 and 4 Flat shards with the
product's own processes (train, one process per slice, finalize). Each slice pod reads only
its row range by ranged GETs; the manifest records what each fetched
(``sharding.slices[].sourceBytes``, counted from the S3 response bodies). Before per-slice
reads every slice pod downloaded the whole object (and the ids object), so that is the
baseline per pod. Flat keeps the build cheap: the bytes read do not depend on the type.

Results are added to ``bench/results/scale.json`` under ``slice_reads`` and rendered in
``scale.md`` (the rest of that file's figures are kept as they are).

    python bench/scale_slice_reads.py               # 1,000,000 x 64, 2 and 4 shards (a few minutes)
    python bench/scale_slice_reads.py --vectors 200000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scale_bench import BUCKET, HORIZON, NAMESPACE, PREFIX, RESULTS, build, make_data, say
from serving_harness import Moto, fake_aws_env

SOURCE_BUCKET = "bench-source"


def spec_for(dim: int, shards: int, endpoint: str) -> dict:
    return {"horizon": HORIZON, "dimension": dim, "indexType": "Flat", "shards": shards, "shardMerge": "Never",
            "source": {"s3": {"bucket": SOURCE_BUCKET, "key": "{horizon}/vectors.npy", "idsKey": "{horizon}/ids.npy"}},
            "storage": {"bucket": BUCKET, "endpoint": endpoint, "prefix": PREFIX},
            "validation": {"k": 10, "minRecall": 0.0, "queries": 100}}


def manifest_of(endpoint: str, index: str, version: str) -> dict:
    from indexops_api.layout import version_prefix
    from indexops_store import make_client

    key = f"{version_prefix(PREFIX, NAMESPACE, index, HORIZON, version)}/manifest.json"
    return json.loads(make_client(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--shards", default="2,4")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    fake_aws_env()
    from indexops_store import make_client

    started = time.time()
    runs = []
    with tempfile.TemporaryDirectory(prefix="faiss-slice-reads-") as tmp:
        work = Path(tmp)
        data_path, ids_path = work / "vectors.npy", work / "ids.npy"
        make_data(args.vectors, args.dim, 10, data_path)
        np.save(ids_path, np.arange(args.vectors, dtype=np.int64) * 3 + 1)
        moto = Moto(work / "moto.log")
        try:
            client = make_client(moto.endpoint)
            client.create_bucket(Bucket=SOURCE_BUCKET)
            client.upload_file(str(data_path), SOURCE_BUCKET, f"{HORIZON}/vectors.npy")
            client.upload_file(str(ids_path), SOURCE_BUCKET, f"{HORIZON}/ids.npy")
            whole = data_path.stat().st_size + ids_path.stat().st_size
            for shards in [int(s) for s in args.shards.split(",")]:
                index = f"slice-reads-s{shards}"
                say(f"building {shards} Flat shards from s3://{SOURCE_BUCKET}")
                built = build(index, spec_for(args.dim, shards, moto.endpoint), work, args.parallel)
                sharding = manifest_of(moto.endpoint, index, built["version"])["sharding"]
                slices = [{"shard": s["shard"], "rows": s["rows"], "source_bytes": s["sourceBytes"],
                           "peak_rss_bytes": built["pods"][f"shard-{s['shard']}"]["peak_rss_bytes"],
                           "seconds": built["pods"][f"shard-{s['shard']}"]["seconds"]} for s in sharding["slices"]]
                say(f"{shards} shards: bytes per slice {[s['source_bytes'] for s in slices]} of {whole}")
                runs.append({"shards": shards, "rule": sharding["rule"], "slices": slices,
                             "train_peak_rss_bytes": built["pods"]["train"]["peak_rss_bytes"]})
        finally:
            moto.stop()
    result_path = args.out / "scale.json"
    result = json.loads(result_path.read_text())
    result["slice_reads"] = {
        "command": "python bench/scale_slice_reads.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "vectors": args.vectors, "dimension": args.dim, "source_bytes_whole": whole, "runs": runs,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "total_seconds": time.time() - started,
    }
    from scale_report import write_reports

    write_reports(result, args.out, "scale")
    say(f"wrote {args.out}/scale.{{json,md,png}}")


if __name__ == "__main__":
    main()
