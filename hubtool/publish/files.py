"""What a push sends: the files of a run that belong in a Hub repo, compared with what the
repo already holds (git blob ids, LFS sha256), and the retry rule for transient failures.

Checkpoints, optimizer states, caches, hidden files and anything that looks like a secret
never leave the machine."""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hubtool.core.rundir import RunDir, model_config_file
from hubtool.errors import UsageError

T = TypeVar("T")
SKIP_DIRS = {"checkpoints", ".git", "__pycache__", "runs", ".cache", "wandb", "logs"}
SECRET = re.compile(
    r"^(\.env.*|.*token.*|\.netrc|\.git-credentials|.*\.pem|.*\.key|id_[rd]sa.*|credentials.*)$",
    re.I,
)
JUNK = re.compile(
    r"^(optimizer.*\.(pt|bin|safetensors)|scheduler\.pt|rng_state.*|random_states.*|"
    r"training_args\.bin|hubtool_state\.json|.*\.tmp|.*\.pyc|\..*)$"
)
TOKEN_FILES_OK = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
TOKEN_IN_TEXT = re.compile(rb"\b(?:hf|api_org)_[A-Za-z0-9]{30,}")
# Files a push manages: stale ones left in the repo by an earlier push are deleted.
MANAGED = (
    "*.safetensors",
    "*.bin",
    "*.pt",
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "config.json",
    "adapter_config.json",
    "generation_config.json",
    "tokenizer*.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "metrics.json",
    "runs/*",  # TensorBoard events: an earlier run's are stale
)
LFS_BYTES = 10 * 1024 * 1024
TAG = re.compile(r"^[A-Za-z0-9][\w.+-]{0,99}$")


@dataclass
class Change:
    path: str
    status: str  # add, change, delete, same
    size: int
    content: Path | bytes | None = None


# -- what belongs in the repo -------------------------------------------------------------------
def skip_reason(relative: Path) -> str | None:
    """Why a file of the model folder must not be uploaded, or None."""
    if any(part in SKIP_DIRS for part in relative.parts[:-1]):
        return "training state or cache"
    name = relative.name
    if name not in TOKEN_FILES_OK and SECRET.match(name):
        return "looks like a secret"
    if JUNK.match(name) or any(p.startswith(".") for p in relative.parts[:-1]):
        return "training state, temporary or hidden file"
    return None


def collect(run_dir: Path) -> tuple[dict[str, Path | bytes], list[tuple[str, str]]]:
    """(repo path -> local file or bytes, skipped paths with reasons)."""
    model = RunDir(run_dir).model
    if model_config_file(model) is None:
        raise UsageError(
            f"{run_dir} has no model to push (model/config.json is missing).",
            "Give the --output-dir of a finished `hubtool finetune`.",
        )
    if not (model / "README.md").is_file():
        raise UsageError(
            f"{run_dir}/model has no card (README.md).", f"Write it with `hubtool card {run_dir}`."
        )
    files: dict[str, Path | bytes] = {}
    skipped: list[tuple[str, str]] = []
    for path in sorted(p for p in model.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(model)
        reason = "a link" if path.is_symlink() else skip_reason(relative)
        if reason:
            skipped.append((relative.as_posix(), reason))
            continue
        files[relative.as_posix()] = path
    if RunDir(run_dir).metrics.is_file():
        files["metrics.json"] = public_metrics(RunDir(run_dir).metrics)
    files |= training_logs(run_dir)
    _refuse_secrets(files)
    return files, skipped


def training_logs(run_dir: Path) -> dict[str, Path | bytes]:
    """The run's TensorBoard event files, as runs/… in the repo: the Hub shows them in its
    Training metrics tab (the hyperparameters file beside them says no more than the card)."""
    logs = RunDir(run_dir).logs
    if not logs.is_dir():
        return {}
    return {
        f"runs/{path.relative_to(logs).as_posix()}": path
        for path in sorted(logs.rglob("events.out.tfevents.*"))
        if path.is_file() and not path.is_symlink()
    }


def public_metrics(path: Path) -> bytes:
    """metrics.json without this machine's paths."""
    document = json.loads(path.read_text())
    document.pop("model", None)
    if isinstance(document.get("dataset"), dict):
        document["dataset"].pop("path", None)
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def _refuse_secrets(files: dict[str, Path | bytes]) -> None:
    for name, content in files.items():
        if isinstance(content, Path) and content.stat().st_size > LFS_BYTES:
            continue
        data = content.read_bytes() if isinstance(content, Path) else content
        if TOKEN_IN_TEXT.search(data):
            raise UsageError(
                f"{name} holds what looks like a Hub token; nothing was pushed.",
                "Remove the token from the file (and revoke it), then push again.",
            )


# -- comparing with the repo --------------------------------------------------------------------
def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _read(content: Path | bytes) -> bytes:
    return content.read_bytes() if isinstance(content, Path) else content


def _size(content: Path | bytes) -> int:
    return content.stat().st_size if isinstance(content, Path) else len(content)


def _sha256(content: Path | bytes) -> str:
    digest = hashlib.sha256()
    if isinstance(content, bytes):
        digest.update(content)
        return digest.hexdigest()
    with open(content, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unchanged(content: Path | bytes, remote: Any) -> bool:
    """Whether the repo's file (a RepoFile) already holds ``content``."""
    if remote.size != _size(content):
        return False
    if remote.lfs is not None:
        return bool(remote.lfs.sha256 == _sha256(content))
    return bool(remote.blob_id == git_blob_id(_read(content)))


def diff_files(files: dict[str, Path | bytes], remote: dict[str, Any]) -> list[Change]:
    changes = []
    for name, content in files.items():
        if name not in remote:
            status = "add"
        else:
            status = "same" if unchanged(content, remote[name]) else "change"
        changes.append(Change(name, status, _size(content), content))
    for name, entry in remote.items():
        if name not in files and any(fnmatch.fnmatch(name, p) for p in MANAGED):
            changes.append(Change(name, "delete", entry.size or 0))
    return changes


def card_diff(old: str | None, new: str) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        new.splitlines(keepends=True),
        "repo/README.md",
        "local/README.md",
    )
    return "".join(lines)


# -- retries ------------------------------------------------------------------------------------
def transient(exc: BaseException) -> bool:
    """Connection drops, timeouts, 5xx and 429: worth another try."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, httpx2.TransportError):
        return True
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return False


def retrying(fn: Callable[[], T], attempts: int = 5, first_wait: float = 0.5) -> T:
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts - 1 or not transient(exc):
                raise
            time.sleep(first_wait * 2**attempt)
    raise AssertionError("unreachable")
