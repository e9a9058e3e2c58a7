"""Local Hub benchmark: catalog import, listing latency, LFS upload rate, re-upload requests.

    python benchmarks/hub_bench.py [--catalog PATH] [--upload-mb 200] [--runs 3]

1. Import the real 29k-row catalog (``../shared/data/hub-catalog/``) and time it.
2. p50/p95 of ``list_models`` queries with filters over it: server time (``Server-Timing``)
   and the time the real client sees. Target: server p95 < 50 ms.
3. A large LFS file through ``HfApi.upload_file`` (hash, preupload, batch, PUT, verify,
   commit) against a raw HTTP PUT of same-sized bytes to the same server, interleaved,
   median of ``--runs``. Target: upload_file at >= 0.5 of the raw rate.
4. Requests made by re-uploading an unchanged 10-file folder. Target: no commit, <= 4.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CATALOG = (
    ROOT.parent / "shared/data/hub-catalog/hub_models_2022-02_saranscript_full.jsonl.gz"
)
QUERIES = [
    {"filter": "fr"},
    {"filter": ["fr", "fill-mask"]},
    {"filter": ["en", "license:apache-2.0"], "sort": "likes"},
    {"pipeline_tag": "text-classification", "sort": "downloads"},
    {"search": "bert", "filter": "pytorch"},
    {"author": "Helsinki-NLP"},
    {"filter": "dataset:squad", "full": True},
    {"search": "camembert", "sort": "lastModified"},
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_import(svc, catalog: Path) -> None:
    from hubtool.hub.catalog import import_catalog

    start = time.perf_counter()
    imported, skipped = import_catalog(svc, catalog)
    took = time.perf_counter() - start
    print(
        f"catalog import: {imported} rows ({skipped} skipped) in {took:.2f} s "
        f"= {imported / took:,.0f} rows/s"
    )


def bench_listing(url: str, rounds: int = 20) -> None:
    import httpx2 as httpx
    from huggingface_hub import HfApi

    api = HfApi(endpoint=url, token=False)
    server, client = [], []
    for _ in range(rounds):
        for q in QUERIES:
            params = {k: v for k, v in q.items()}
            params.setdefault("limit", 50)
            started = time.perf_counter()
            list(api.list_models(**params))
            client.append((time.perf_counter() - started) * 1000)
            raw = {**params, "full": "true" if params.get("full") else None}
            r = httpx.get(f"{url}/api/models", params={k: v for k, v in raw.items() if v})
            server.append(float(r.headers["Server-Timing"].split("dur=")[1]))
    page = httpx.get(f"{url}/api/models", params={"filter": "en"})
    page_ms = float(page.headers["Server-Timing"].split("dur=")[1])
    print(
        f"list_models, {len(QUERIES)} filtered queries x {rounds}, limit 50: "
        f"server p50 {percentile(server, 0.5):.1f} ms, p95 {percentile(server, 0.95):.1f} ms; "
        f"client (HfApi) p50 {percentile(client, 0.5):.1f} ms, p95 {percentile(client, 0.95):.1f}"
        f" ms"
    )
    print(f"list_models full page (1000 rows, filter=en): server {page_ms:.1f} ms")


def bench_upload(url: str, token: str, user: str, size_mb: int, runs: int, tmp: Path) -> None:
    import httpx2 as httpx
    from huggingface_hub import HfApi

    api = HfApi(endpoint=url, token=token)
    size = size_mb * 1024 * 1024
    raw_rates, client_rates = [], []
    for i in range(runs):
        for kind in ("raw", "client"):
            path = tmp / f"{kind}{i}.bin"
            with open(path, "wb") as fh:
                for _ in range(size_mb):
                    fh.write(os.urandom(1024 * 1024))
            repo = f"{user}/bench-{kind}-{i}"
            api.create_repo(repo, exist_ok=True)
            if kind == "raw":
                oid = hashlib.sha256(path.read_bytes()).hexdigest()
                batch = httpx.post(
                    f"{url}/{repo}.git/info/lfs/objects/batch",
                    json={"operation": "upload", "objects": [{"oid": oid, "size": size}]},
                    headers={"Authorization": f"Bearer {token}"},
                ).json()
                href = batch["objects"][0]["actions"]["upload"]["href"]
                started = time.perf_counter()
                with open(path, "rb") as fh:
                    httpx.put(
                        href, content=fh, headers={"Content-Length": str(size)}, timeout=600
                    ).raise_for_status()
                raw_rates.append(size_mb / (time.perf_counter() - started))
            else:
                started = time.perf_counter()
                api.upload_file(path_or_fileobj=str(path), path_in_repo="big.bin", repo_id=repo)
                client_rates.append(size_mb / (time.perf_counter() - started))
            path.unlink()
    raw, client = statistics.median(raw_rates), statistics.median(client_rates)
    print(
        f"LFS upload of {size_mb} MB, median of {runs} interleaved: raw HTTP PUT "
        f"{raw:.0f} MB/s; HfApi.upload_file {client:.0f} MB/s = {client / raw:.2f} of raw"
    )


def bench_reupload(server, url: str, token: str, user: str, tmp: Path) -> None:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=url, token=token)
    folder = tmp / "ten"
    folder.mkdir()
    for i in range(10):
        (folder / f"f{i}.txt").write_text(f"file {i}\n" * 100)
    repo = f"{user}/bench-reupload"
    api.create_repo(repo, exist_ok=True)
    first = api.upload_folder(folder_path=folder, repo_id=repo)
    before = len(server.requests)
    second = api.upload_folder(folder_path=folder, repo_id=repo)
    made = server.requests[before:]
    print(
        f"unchanged 10-file re-upload: {len(made)} requests "
        f"({', '.join(m + ' ' + p.split('/')[-2] for m, p in made)}), "
        f"new commit: {'no' if second.oid == first.oid else 'YES'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--upload-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not args.catalog.exists():
        print(f"catalog not found: {args.catalog}", file=sys.stderr)
        return 2
    os.environ.update(HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    from hubtool.hub.server import BackgroundHub

    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["HF_HOME"] = str(tmp / "hf_home")
        with BackgroundHub(tmp / "hub") as hub:
            bench_import(hub.service, args.catalog)
            hub.service.add_user("bench")
            token = hub.service.create_token("bench", write=True)
            bench_listing(hub.url)
            bench_reupload(hub.server, hub.url, token, "bench", tmp)
            bench_upload(hub.url, token, "bench", args.upload_mb, args.runs, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
