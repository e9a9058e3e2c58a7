"""Search benchmark: hubtool against the `hf` CLI, same machine, same local Hub, interleaved.

    python benchmarks/search_bench.py [--runs 7] [--catalog PATH]

Loads a local Hub with the real 29k-row catalog, then times whole commands (process start
included), alternating the tools on every round, and reports medians:

- `hubtool --help` vs `hf --help`, and `hf models ls --help`;
- `hubtool search --task fill-mask --lang fr --json --refresh` (four listings, ranking)
  vs `hf models ls --filter fr --pipeline-tag fill-mask` (one listing, no ranking).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_CATALOG = (
    ROOT.parent / "shared/data/hub-catalog/hub_models_2022-02_saranscript_full.jsonl.gz"
)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    args = parser.parse_args()
    from hubtool.hub.catalog import import_catalog
    from hubtool.hub.server import BackgroundHub
    from hubtool.hub.service import HubService

    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        import_catalog(HubService(Path(tmp) / "hub"), args.catalog)
        with BackgroundHub(Path(tmp) / "hub") as hub:
            env = {
                **os.environ,
                "HF_ENDPOINT": hub.url,
                "HF_HOME": str(Path(tmp) / "home"),
                "HF_HUB_DISABLE_TELEMETRY": "1",
            }
            env.pop("HF_TOKEN", None)
            pairs = {
                "--help": ([str(BIN / "hubtool"), "--help"], [str(BIN / "hf"), "--help"]),
                "models ls --help": (
                    [str(BIN / "hubtool"), "search", "--help"],
                    [str(BIN / "hf"), "models", "ls", "--help"],
                ),
                "French fill-mask": (
                    [
                        str(BIN / "hubtool"),
                        "search",
                        "--task",
                        "fill-mask",
                        "--lang",
                        "fr",
                        "--json",
                        "--refresh",
                    ],
                    [
                        str(BIN / "hf"),
                        "models",
                        "ls",
                        "--filter",
                        "fr",
                        "--pipeline-tag",
                        "fill-mask",
                        "--format",
                        "json",
                    ],
                ),
            }
            times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in pairs}
            for _ in range(args.runs):
                for name, (ours, theirs) in pairs.items():
                    times[name][0].append(timed(ours, env))
                    times[name][1].append(timed(theirs, env))
    print(f"median of {args.runs} interleaved runs (seconds, process start included)")
    print(f"{'command':<18} {'hubtool':>8} {'hf':>8}")
    for name, (ours_t, theirs_t) in times.items():
        print(f"{name:<18} {statistics.median(ours_t):>8.3f} {statistics.median(theirs_t):>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
