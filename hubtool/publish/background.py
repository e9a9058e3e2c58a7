"""Pushes during training, in a background thread that never blocks a training step.

The training loop hands over a snapshot (hard links of the files just written: the run
directory replaces folders rather than editing files, so a snapshot stays intact) and goes on.
One worker uploads; a newer snapshot replaces one still waiting, so a slow Hub never makes the
run queue stale work. Failures are kept and reported at the end; training never stops for them.

``epoch``: the best model so far goes to the repo's branch at each checkpoint save.
``checkpoint``: also the training state (the latest checkpoint, train_log.jsonl, metrics.json
and the best model) to the ``hubtool-checkpoint`` branch, which ``finetune --resume
hub:NS/NAME`` continues from on another machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubtool.core.rundir import RunDir
from hubtool.publish import files as pushfiles

CHECKPOINT_BRANCH = "hubtool-checkpoint"
STRATEGIES = ("end", "epoch", "checkpoint")

if TYPE_CHECKING:
    from huggingface_hub import HfApi


@dataclass
class Job:
    revision: str
    folder: Path  # a snapshot, removed once pushed
    message: str
    create_branch: bool = False


@dataclass
class BackgroundPusher:
    api: HfApi
    repo_id: str
    revision: str = "main"
    private: bool = False
    errors: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pending: dict[str, Job] = {}
        self._lock = threading.Condition()
        self._closing = False
        self._ready = False
        self._thread = threading.Thread(target=self._work, name="hubtool-push", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            stale = self._pending.pop(job.revision, None)
            if stale is not None:
                shutil.rmtree(stale.folder, ignore_errors=True)
            self._pending[job.revision] = job
            self._lock.notify()

    def close(self, timeout: float | None = None) -> None:
        """Wait for the queued pushes to finish."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._lock.wait()
                if not self._pending:
                    return
                revision = next(iter(self._pending))
                job = self._pending.pop(revision)
            try:
                self._push(job)
                self.pushed.append(f"{job.revision}: {job.message}")
            except Exception as exc:  # reported at the end; training goes on
                self.errors.append(f"{job.message}: {type(exc).__name__}: {exc}")
            finally:
                shutil.rmtree(job.folder, ignore_errors=True)

    def _push(self, job: Job) -> None:
        if not self._ready:
            pushfiles.retrying(
                lambda: self.api.create_repo(self.repo_id, private=self.private, exist_ok=True)
            )
            self._ready = True
        if job.create_branch:
            pushfiles.retrying(
                lambda: self.api.create_branch(self.repo_id, branch=job.revision, exist_ok=True)
            )
        ops = folder_operations(job.folder)
        pushfiles.retrying(
            lambda: self.api.create_commit(
                self.repo_id, operations=ops, commit_message=job.message, revision=job.revision
            )
        )


def folder_operations(folder: Path) -> list[Any]:
    """One add per uploadable file of ``folder`` (secrets and junk left out)."""
    from huggingface_hub import CommitOperationAdd

    ops = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        # Training state is what the checkpoint branch is for; elsewhere the push rules hold.
        if relative.parts[0] == "checkpoints" or pushfiles.skip_reason(relative) is None:
            ops.append(CommitOperationAdd(relative.as_posix(), str(path)))
    return ops


def snapshot(sources: dict[str, Path]) -> Path:
    """Hard-link (or copy) files and folders into a fresh temporary folder."""
    root = Path(tempfile.mkdtemp(prefix="hubtool-push-"))
    for name, source in sources.items():
        target = root / name
        if source.is_dir():
            shutil.copytree(source, target, copy_function=_link)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _link(str(source), str(target))
    return root


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def on_save_hook(pusher: BackgroundPusher, strategy: str) -> Any:
    """The callback the training loop calls after each checkpoint is written (the run's
    folder is the checkpoint's grandparent: RUN/checkpoints/step-N)."""

    def hook(step: int, checkpoint: Path) -> None:
        run = RunDir(checkpoint.parent.parent)
        if run.model.is_dir():
            pusher.submit(
                Job(
                    pusher.revision,
                    snapshot({p.name: p for p in run.model.iterdir()}),
                    f"Training in progress: best model at step {step}",
                )
            )
        if strategy == "checkpoint":
            state = {
                f"checkpoints/{checkpoint.name}": checkpoint,
                "model": run.model,
                "train_log.jsonl": run.train_log,
                "metrics.json": run.metrics,
            }
            pusher.submit(
                Job(CHECKPOINT_BRANCH, snapshot(state), f"Checkpoint at step {step}", True)
            )

    return hook
