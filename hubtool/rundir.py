"""The run directory: the hand-off between stages (train -> card -> push).

    RUN_DIR/model/             safetensors weights, config with labels, tokenizer (best so far)
    RUN_DIR/checkpoints/       the last K accelerate states (step-N/)
    RUN_DIR/train_log.jsonl    per-step loss and lr, per-evaluation metrics
    RUN_DIR/metrics.json       final validation metrics with dataset id, config, split, revision
    RUN_DIR/run.json           resolved configuration and provenance (never a token)

Every file is written to a temporary name and renamed, so a crash leaves the old version or the
new one, never half a file; the model folder is replaced the same way.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from hubtool.errors import UsageError

RUN_FILES = ("run.json", "train_log.jsonl", "metrics.json", "model", "checkpoints")


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def replace_dir(tmp: Path, target: Path) -> None:
    """Move a fully written folder into place, keeping the old one until the new one is there."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def prepare(run_dir: Path, overwrite: bool, resume: bool) -> None:
    """Refuse a folder that holds another run unless resuming or overwriting."""
    holds_run = run_dir.exists() and any((run_dir / f).exists() for f in RUN_FILES)
    if holds_run and not (overwrite or resume):
        raise UsageError(
            f"{run_dir} already holds a run.",
            "Pass --resume to continue it, --overwrite to replace it, or choose "
            "another --output-dir.",
        )
    if resume and not (run_dir / "checkpoints").is_dir():
        raise UsageError(
            f"Nothing to resume in {run_dir}: it has no checkpoints/.",
            "Start a new run without --resume.",
        )
    if holds_run and overwrite and not resume:
        for name in RUN_FILES:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"


def refuse_lfs_pointers(folder: Path) -> None:
    """A checkpoint cloned without git-lfs holds ~130-byte pointer files where the weights
    should be; say so instead of letting a loader fail on them."""
    if not folder.is_dir():
        return
    pointers = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.stat().st_size < 1024:
            with open(path, "rb") as fh:
                if fh.read(len(LFS_POINTER)) == LFS_POINTER:
                    pointers.append(path.name)
    if pointers:
        raise UsageError(
            f"{folder} holds git-lfs pointer files instead of their content: "
            f"{', '.join(pointers[:5])}. It was cloned without git-lfs.",
            f"Install git-lfs (apt-get install git-lfs, then git lfs install) and run "
            f"`git lfs pull` in {folder}.",
        )


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if (p / "hubtool_state.json").exists()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: Path, given: str | None) -> Path:
    if given and given not in ("latest", "true"):
        path = Path(given)
        if not (path / "hubtool_state.json").exists():
            raise UsageError(f"{path} is not a complete hubtool checkpoint.")
        return path
    found = checkpoints(run_dir)
    if not found:
        raise UsageError(
            f"No complete checkpoint in {run_dir / 'checkpoints'}.",
            "Start a new run without --resume.",
        )
    return found[-1]


def prune(run_dir: Path, keep: int) -> None:
    for old in checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def hardware(num_processes: int, device: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "device": device,
        "processes": num_processes,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "hubtool",
        "torch",
        "transformers",
        "datasets",
        "accelerate",
        "evaluate",
        "huggingface_hub",
        "tokenizers",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
