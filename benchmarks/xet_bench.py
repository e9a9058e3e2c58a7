"""Xet benchmark: uploading and downloading one large file to the local Hub three ways.

    python benchmarks/xet_bench.py [--mb 200] [--runs 3]

1. **Xet**: ``HfApi.upload_file`` as every user runs it (``hf_xet`` installed), then
   ``hf_hub_download`` (reconstructed from the CAS);
2. **LFS**: the same with ``HF_HUB_DISABLE_XET=1`` (the LFS batch API, one PUT), then the
   download through resolve's redirect;
3. **raw PUT**: the bytes sent in one HTTP PUT to the LFS upload link (no hashing on the
   client, no commit): the transport's floor on this server.

Then (Xet, LFS) the file is uploaded again with one byte changed in its middle: Xet sends
the changed chunk, LFS the whole file.

Each client run is its own process (the libraries read their settings at import), with a new
HF_HOME and a new random file, so nothing is deduplicated across runs. Methods interleave;
medians are reported, with MB/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIENT = """
import json, sys, time
from huggingface_hub import HfApi, hf_hub_download
token, repo, path, cache = sys.argv[1:5]
api = HfApi(token=token)
start = time.perf_counter()
api.upload_file(path_or_fileobj=path, path_in_repo="weights.bin", repo_id=repo)
up = time.perf_counter() - start
start = time.perf_counter()
hf_hub_download(repo, "weights.bin", token=token, cache_dir=cache)
down = time.perf_counter() - start
with open(path, "r+b") as fh:  # one byte changed in the middle, uploaded again
    fh.seek(fh.seek(0, 2) // 2)
    byte = fh.read(1)
    fh.seek(-1, 1)
    fh.write(bytes([byte[0] ^ 0xFF]))
start = time.perf_counter()
api.upload_file(path_or_fileobj=path, path_in_repo="weights.bin", repo_id=repo)
print(json.dumps({"upload": up, "download": down, "edit": time.perf_counter() - start}))
"""

RAW = """
import hashlib, http.client, json, os, sys, time, urllib.request
from urllib.parse import urlsplit
endpoint, token, repo, path = sys.argv[1:5]
size = os.path.getsize(path)
digest = hashlib.sha256()
with open(path, "rb") as fh:
    while block := fh.read(1 << 20):
        digest.update(block)
ask = {"operation": "upload", "objects": [{"oid": digest.hexdigest(), "size": size}]}
req = urllib.request.Request(f"{endpoint}/{repo}.git/info/lfs/objects/batch",
    data=json.dumps(ask).encode(), method="POST",
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
batch = json.loads(urllib.request.urlopen(req).read())
href = urlsplit(batch["objects"][0]["actions"]["upload"]["href"])
start = time.perf_counter()
conn = http.client.HTTPConnection(href.hostname, href.port, timeout=600)
with open(path, "rb") as fh:
    conn.request("PUT", f"{href.path}?{href.query}", body=fh, headers={"Content-Length": str(size)})
    answer = conn.getresponse()
    answer.read()
assert answer.status == 200, answer.status
print(json.dumps({"upload": time.perf_counter() - start, "download": None, "edit": None}))
"""


def random_file(path: Path, mb: int, seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        for _ in range(mb // 16):
            fh.write(rng.integers(0, 256, 16 << 20, dtype=np.uint8).tobytes())
        fh.write(rng.integers(0, 256, (mb % 16) << 20, dtype=np.uint8).tobytes())


def one_run(method: str, hub, token: str, repo: str, tmp: Path, mb: int, seed: int) -> dict:
    data = tmp / f"{method}-{seed}.bin"
    random_file(data, mb, seed)
    home = tmp / f"home-{method}-{seed}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_PROGRESS_BARS="1")
    env.update(HF_HUB_DISABLE_TELEMETRY="1")
    if method == "lfs":
        env["HF_HUB_DISABLE_XET"] = "1"
    if method == "raw":
        args = ["-c", RAW, hub.url, token, repo, str(data)]
    else:
        args = ["-c", CLIENT, token, repo, str(data), str(home / "dl")]
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=1200
    )
    if proc.returncode != 0:
        raise SystemExit(f"{method} run failed:\n{proc.stderr[-3000:]}")
    data.unlink()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from hubtool.hub.server import BackgroundHub

    results: dict[str, list[dict]] = {"xet": [], "lfs": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="xet-bench-") as name:
        tmp = Path(name)
        with BackgroundHub(tmp / "hub") as hub:
            hub.service.add_user("bench")
            token = hub.service.create_token("bench", write=True)
            from huggingface_hub import HfApi

            api = HfApi(endpoint=hub.url, token=token)
            for r in range(args.runs):
                for i, method in enumerate(results):
                    repo = f"bench/{method}-{r}"
                    api.create_repo(repo)
                    seed = 100 * r + i
                    results[method].append(one_run(method, hub, token, repo, tmp, args.mb, seed))
    cpu = "AVX512-BF16" if "avx512_bf16" in Path("/proc/cpuinfo").read_text() else "no AVX512-BF16"
    print(f"{args.mb} MB of random bytes, {args.runs} runs interleaved, medians ({cpu}):")
    head = f"{'method':<8} {'upload s':>9} {'MB/s':>6} {'download s':>11} {'MB/s':>6}"
    print(f"{head} {'1-byte edit s':>14}")
    for method, runs in results.items():
        up = statistics.median(r["upload"] for r in runs)
        cells = []
        for key in ("download", "edit"):
            values = [r[key] for r in runs if r[key] is not None]
            cells.append(statistics.median(values) if values else None)
        down, edit = cells
        shown = f"{down:>11.2f} {args.mb / down:>6.0f}" if down else f"{'–':>11} {'–':>6}"
        edited = f"{edit:>14.2f}" if edit else f"{'–':>14}"
        print(f"{method:<8} {up:>9.2f} {args.mb / up:>6.0f} {shown} {edited}")
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - start:.0f} s in all)")
    sys.exit(code)
