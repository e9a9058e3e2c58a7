"""Push benchmark: `hubtool push` against `HfApi.create_repo` + `upload_folder`, the way a user
publishes a Trainer output folder by hand, on the same local Hub.

    python benchmarks/push_bench.py [--weights-mb 90] [--runs 3]

A run directory (the fixed test run, its card rendered, a model.safetensors of
``--weights-mb`` random bytes, plus an optimizer.pt and a checkpoint as Trainer leaves them)
is published three ways per round, each to a fresh repo, interleaved, medians reported:

1. first publish (repo created, every file sent);
2. the same publish again, nothing changed;
3. the card changed by one line.

For each: wall time, requests the server served, commits made, and files that reached the
repo. upload_folder is given the model folder (a user would exclude checkpoints and optimizer
states by hand with ``ignore_patterns``; the bench shows the folder as Trainer leaves it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_run(tmp: Path, weights_mb: int, endpoint: str) -> Path:
    from hubtool.cards.stage import card_stage

    run = tmp / "run"
    shutil.copytree(ROOT / "tests" / "data" / "golden-run", run)
    import torch
    from safetensors.torch import save_file

    model = run / "model"
    save_file({"w": torch.rand(weights_mb << 18)}, model / "model.safetensors")  # float32
    (model / "optimizer.pt").write_bytes(os.urandom(2 * weights_mb << 20))  # Adam: 2× weights
    (model / "training_args.bin").write_bytes(os.urandom(4096))
    from hubtool.core.hubclient import HubSettings

    settings = HubSettings.from_env()  # HF_TOKEN and HF_HOME are set by main()
    card_stage(
        run, [{"license": "apache-2.0"}], HubSettings(endpoint, settings.token, settings.hf_home)
    )
    return run


def timed(server, action) -> tuple[float, int]:
    before = len(server.requests)
    start = time.perf_counter()
    action()
    return time.perf_counter() - start, len(server.requests) - before


def hubtool_way(run: Path, repo: str) -> None:
    from hubtool.core.hubclient import HubSettings
    from hubtool.publish.push import PushOptions, push_run

    push_run(run, PushOptions(repo), HubSettings.from_env())


def by_hand(run: Path, repo: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, exist_ok=True)
    api.upload_folder(repo_id=repo, folder_path=run / "model")


def one_round(server, run: Path, way, repo: str) -> dict[str, tuple[float, int]]:
    from huggingface_hub import HfApi

    api = HfApi()
    out = {"first": timed(server, lambda: way(run, repo))}
    out["unchanged"] = timed(server, lambda: way(run, repo))
    card = run / "model" / "README.md"
    original = card.read_text()
    card.write_text(original + "\nOne more line.\n")
    out["card"] = timed(server, lambda: way(run, repo))
    card.write_text(original)
    out["commits"] = (len(list(api.list_repo_commits(repo))) - 1, 0)
    entries = [e for e in api.list_repo_tree(repo, recursive=True) if hasattr(e, "size")]
    out["files"] = (len(entries), 0)
    out["mb"] = (sum(e.size for e in entries) / 2**20, 0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-mb", type=int, default=90)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    with tempfile.TemporaryDirectory(prefix="push-bench-") as name:
        tmp = Path(name)
        os.environ["HF_HOME"] = str(tmp / "hf_home")
        from hubtool.hub.server import BackgroundHub

        with BackgroundHub(tmp / "hub") as hub:
            hub.service.add_user("bench")
            os.environ["HF_ENDPOINT"] = hub.url
            os.environ["HF_TOKEN"] = hub.service.create_token("bench", write=True)
            import huggingface_hub.constants as constants

            constants.ENDPOINT = hub.url  # read at import; the bench sets it late
            run = make_run(tmp, args.weights_mb, hub.url)
            results: dict[str, list[dict]] = {"hubtool push": [], "upload_folder": []}
            for i in range(args.runs):
                for label, way in (("hubtool push", hubtool_way), ("upload_folder", by_hand)):
                    repo = f"bench/{label.split()[0]}-{i}"
                    results[label].append(one_round(hub.server, run, way, repo))
    report(results, args)
    return 0


def report(results: dict[str, list[dict]], args) -> None:
    print(f"push of a run with {args.weights_mb} MB of weights, median of {args.runs}")
    print(
        f"{'':16}{'first s':>9}{'req':>5}{'same s':>9}{'req':>5}{'card s':>9}{'req':>5}"
        f"{'commits':>9}{'files':>7}{'repo MB':>9}"
    )
    for label, rounds in results.items():

        def med(key: str, i: int, rounds: list[dict] = rounds) -> float:
            return statistics.median(r[key][i] for r in rounds)

        print(
            f"{label:16}{med('first', 0):9.2f}{med('first', 1):5.0f}"
            f"{med('unchanged', 0):9.2f}{med('unchanged', 1):5.0f}"
            f"{med('card', 0):9.2f}{med('card', 1):5.0f}"
            f"{med('commits', 0):9.0f}{med('files', 0):7.0f}{med('mb', 0):9.1f}"
        )


if __name__ == "__main__":
    sys.exit(main())
