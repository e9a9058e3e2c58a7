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

import errno
import json
import os
import platform
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubtool.errors import StorageError, UsageError

RUN_FILES = ("run.json", "train_log.jsonl", "metrics.json", "model", "checkpoints")


@dataclass(frozen=True)
class RunDir:
    """The run directory's hand-off paths, named once (see the module's docstring)."""

    root: Path

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def card(self) -> Path:
        return self.model / "README.md"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step}"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def train_log(self) -> Path:
        return self.root / "train_log.jsonl"

    @property
    def bias(self) -> Path:
        return self.root / "bias.json"

    @property
    def card_settings(self) -> Path:
        return self.root / "card_settings.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def write_text(path: Path, text: str, mode: int | None = None) -> None:
    """The one atomic write: a temporary beside ``path``, then a rename, so a crash leaves
    the old file or the new one, never half of one (``mode``: permissions, e.g. 0o600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        if mode is not None:
            tmp.chmod(mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


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


# What a run writes into its folder (other files there are the user's and are kept).
RUN_ARTIFACTS = (*RUN_FILES, "logs", "bias.json", "card_settings.json")


def holds_run(run_dir: Path) -> bool:
    return run_dir.is_dir() and any((run_dir / f).exists() for f in RUN_FILES)


def work_dir(run_dir: Path, overwrite: bool, resume: bool) -> Path:
    """Where a run writes: its folder, or, when it overwrites a run there, a staging folder
    beside it, so the old run stays whole until the new one completes (``swap_in``)."""
    if overwrite and not resume and holds_run(run_dir):
        return run_dir.with_name(f".{run_dir.name}.new")
    return run_dir


def check_target(run_dir: Path, overwrite: bool, resume: bool) -> None:
    """Refuse a folder that holds another run unless resuming or overwriting (writes nothing:
    every process of a launch checks, so all of them stop with the same message)."""
    _check_usable(run_dir)
    if holds_run(run_dir) and not (overwrite or resume):
        raise UsageError(
            f"{run_dir} already holds a run.",
            "Pass --resume to continue it, --overwrite to replace it, or choose "
            "another --output-dir.",
        )
    if resume and not RunDir(run_dir).checkpoints.is_dir():
        raise UsageError(
            f"Nothing to resume in {run_dir}: it has no checkpoints/.",
            "Start a new run without --resume.",
        )


def prepare(run_dir: Path, overwrite: bool, resume: bool) -> Path:
    """``check_target``, then make the folder the run writes to (see ``work_dir``) and
    return it."""
    check_target(run_dir, overwrite, resume)
    work = work_dir(run_dir, overwrite, resume)
    if work != run_dir:
        shutil.rmtree(work, ignore_errors=True)  # a staging folder an interrupted run left
    with storage(f"Creating the run directory {work}"):
        work.mkdir(parents=True, exist_ok=True)
    return work


def _check_usable(run_dir: Path) -> None:
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise UsageError(
                    f"--output-dir {run_dir}: {folder} is a file, not a folder.",
                    "Choose another --output-dir.",
                )
            if not os.access(folder, os.W_OK | os.X_OK):
                raise StorageError(
                    f"--output-dir {run_dir}: {folder} is not writable.",
                    "Choose a folder you can write to (--output-dir).",
                )
            return


def swap_in(work: Path, run_dir: Path) -> None:
    """Replace the run in ``run_dir`` with the completed one in ``work``. The old artefacts
    are moved aside first and removed last, so a crash leaves one whole run."""
    if work == run_dir:
        return
    aside = run_dir / ".previous-run"
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    for name in RUN_ARTIFACTS:
        if (run_dir / name).exists():
            os.replace(run_dir / name, aside / name)
    for entry in work.iterdir():
        os.replace(entry, run_dir / entry.name)
    shutil.rmtree(aside, ignore_errors=True)
    work.rmdir()


@contextmanager
def storage(what: str, folder: Path | None = None) -> Iterator[None]:
    """Turn a failed write (disk full, read-only, permissions) into a StorageError. torch's
    writer reports a full disk as a RuntimeError ("unexpected pos"), so a RuntimeError
    while ``folder``'s file system is (nearly) full counts too."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if not _storage_failure(exc, folder):
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "disk full"
        raise StorageError(
            f"{what} failed: {reason}.",
            "Free space or choose another --output-dir; complete checkpoints are kept: run "
            "the same command again with --resume to continue from the last one.",
        ) from None


def _storage_failure(exc: BaseException, folder: Path | None) -> bool:
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return True
    if folder is None or (isinstance(exc, OSError) and exc.errno is not None):
        return False
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL
    except OSError:
        return False


NEARLY_FULL = 16 << 20  # bytes free below which a failed write is taken for a full disk
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
# what a finished run's model/ holds: full weights' config, or a peft adapter's
MODEL_CONFIGS = ("config.json", "adapter_config.json")


def model_config_file(model_dir: Path) -> Path | None:
    """The model folder's config.json, or its adapter_config.json (None: neither)."""
    return next((model_dir / n for n in MODEL_CONFIGS if (model_dir / n).is_file()), None)


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
    root = RunDir(run_dir).checkpoints
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


def cpu_name() -> str:
    """The CPU's model name (Linux), or what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(num_processes: int, device: str) -> dict[str, Any]:
    return {
        "device": device,
        "processes": num_processes,
        "cpu": cpu_name(),
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
