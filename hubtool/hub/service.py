"""The local Hub's state: repositories (git + LFS store + SQLite index), users and access.

Everything the HTTP layer does goes through ``HubService``; it can be driven from Python
without a server (the CLI's ``hub user add`` and ``hub import-catalog`` do).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubtool.errors import NotFoundError, UsageError
from hubtool.hub import metadata, storage
from hubtool.hub.auth import Identity, check_name, hash_token, new_token
from hubtool.hub.db import Database, RepoRow
from hubtool.hub.discussion_store import Discussions
from hubtool.hub.gitstore import GitRepo, iso_from_epoch, parse_lfs_pointer
from hubtool.hub.lfs import LfsStore
from hubtool.hub.limits import HubLimits
from hubtool.hub.protocol import ApiError, disk_full, repo_not_found, revision_not_found

log = logging.getLogger(__name__)

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}

LFS_PATTERNS = [
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
]
DATASET_EXTRA_PATTERNS = [
    "*.mds",
    "*.lz4",
    "*.pcm",
    "*.sam",
    "*.raw",
    "*.aac",
    "*.flac",
    "*.mp3",
    "*.ogg",
    "*.wav",
    "*.bmp",
    "*.gif",
    "*.png",
    "*.tiff",
    "*.jpg",
    "*.jpeg",
    "*.webp",
    "*.mp4",
    "*.webm",
]


def gitattributes(repo_type: str) -> bytes:
    patterns = LFS_PATTERNS + (DATASET_EXTRA_PATTERNS if repo_type == "dataset" else [])
    lines = [f"{p} filter=lfs diff=lfs merge=lfs -text" for p in patterns]
    return ("\n".join(lines) + "\n").encode()


def now_iso() -> str:
    return iso_from_epoch(time.time())


@dataclass(frozen=True)
class RepoRef:
    """A repository as the HTTP layer names it."""

    repo_type: str  # model | dataset | space
    repo_id: str

    @property
    def namespace(self) -> str | None:
        return self.repo_id.split("/")[0] if "/" in self.repo_id else None


class HubService:
    def __init__(self, data_dir: Path, limits: HubLimits | None = None) -> None:
        self.limits = limits or HubLimits()
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.data_dir / "hub.sqlite3")
        self.lfs = LfsStore(self.data_dir / "lfs")
        self.secret = self._load_secret()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @functools.cached_property
    def discussions(self) -> Discussions:
        """Discussions and pull requests (``hubtool.hub.discussions``)."""
        return Discussions(self.db)

    def _load_secret(self) -> bytes:
        path = self.data_dir / "secret.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        return path.read_bytes()

    def sign(self, *parts: str) -> str:
        return hmac.new(self.secret, "\0".join(parts).encode(), hashlib.sha256).hexdigest()[:40]

    def repo_lock(self, ref: RepoRef) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((ref.repo_type, ref.repo_id), threading.Lock())

    def git_path(self, repo_type: str, repo_id: str) -> Path:
        return self.data_dir / "repos" / f"{repo_type}s" / f"{repo_id}.git"

    def git(self, row: RepoRow) -> GitRepo:
        if row.metadata_only:
            raise ApiError(404, "This repository is a catalog entry without files", "EntryNotFound")
        return GitRepo(self.git_path(row.repo_type, row.repo_id))

    # -- users and tokens -------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        fullname: str | None = None,
        email: str | None = None,
        is_org: bool = False,
        private_by_default: bool = False,
    ) -> None:
        """A user or an organization (``private_by_default``: its new repos are private
        unless created public, as an Enterprise organization's)."""
        check_name(name, "Organization name" if is_org else "User name")
        if self.db.get_user(name) is not None:
            raise UsageError(f"{'Organization' if is_org else 'User'} {name!r} already exists.")
        self.db.add_user(name, fullname or name, email, is_org, now_iso(), private_by_default)

    def add_member(self, org: str, user: str) -> None:
        org_row, user_row = self.db.get_user(org), self.db.get_user(user)
        if org_row is None or not org_row["is_org"]:
            raise NotFoundError(
                f"No organization named {org!r}.", "Create it with `hubtool hub org add ORG`."
            )
        if user_row is None or user_row["is_org"]:
            raise NotFoundError(
                f"No user named {user!r}.", "Create it with `hubtool hub user add NAME`."
            )
        self.db.add_member(org, user)

    def create_token(self, user: str, write: bool, name: str | None = None) -> str:
        row = self.db.get_user(user)
        if row is None or row["is_org"]:
            raise NotFoundError(
                f"No user named {user!r}.", "Create it with `hubtool hub user add NAME`."
            )
        token = new_token()
        self.db.add_token(
            hash_token(token),
            user,
            "write" if write else "read",
            name or f"{user}-{'write' if write else 'read'}",
            now_iso(),
        )
        return token

    # -- access -----------------------------------------------------------------------------
    def readable(self, who: Identity | None, ref: RepoRef) -> RepoRow:
        """The repo, if ``who`` may see it; else the Hub's RepoNotFound (401 or 404)."""
        row = self.db.get_repo(ref.repo_type, ref.repo_id)
        if row is None or (row.private and not (who and row.namespace in who.namespaces)):
            raise repo_not_found(who is None)
        return row

    def ungated(self, who: Identity | None, row: RepoRow) -> RepoRow:
        """The repo's files, if ``who`` may have them: a gated repo's only to its owners and
        to users granted access (``user-access-request/grant``); else the Hub's GatedRepo."""
        if row.gated == "false" or (who and row.namespace in who.namespaces):
            return row
        if who is not None and self.db.access_status(row.rowid, who.user) == "accepted":
            return row
        raise ApiError(
            401 if who is None else 403,
            f"Access to {row.repo_type} {row.repo_id} is restricted. You must have access to it "
            "and be authenticated to access it. Please log in."
            if who is None
            else f"Access to {row.repo_type} {row.repo_id} is restricted and you are not in "
            "the authorized list. Ask its owner for access.",
            "GatedRepo",
        )

    def writable(self, who: Identity | None, ref: RepoRef) -> RepoRow:
        row = self.readable(who, ref)
        self.require_write(who, row.namespace or "")
        return row

    def require_write(self, who: Identity | None, namespace: str) -> Identity:
        if who is None:
            raise ApiError(401, "You must be authenticated to write to the Hub; pass a token")
        if namespace not in who.namespaces:
            raise ApiError(403, f"You don't have the rights to write to {namespace}")
        if not who.can_write:
            raise ApiError(
                403,
                "This token is read-only; create a token with write access "
                "(`hubtool hub token create NAME --write`)",
            )
        return who

    def resolve(self, row: RepoRow, rev: str) -> str:
        commit = self.git(row).resolve(rev)
        if commit is None:
            raise revision_not_found(rev)
        return commit

    # -- lifecycle --------------------------------------------------------------------------
    def create_repo(self, who: Identity | None, ref: RepoRef, private: bool) -> RepoRow:
        namespace = ref.namespace
        if namespace is None:
            raise ApiError(400, "A repo id must be 'namespace/name'")
        self.require_write(who, namespace)
        try:
            check_name(ref.repo_id.split("/", 1)[1], "Repository name")
        except UsageError as exc:
            raise ApiError(400, exc.message) from None
        with self.repo_lock(ref):
            if self.db.get_repo(ref.repo_type, ref.repo_id, follow=False) is not None:
                raise _repo_exists(ref)
            self.db.forget_redirect(ref.repo_type, ref.repo_id)  # a moved repo's old name
            path = self.git_path(ref.repo_type, ref.repo_id)
            if path.exists():  # left over by a crash before the row was written
                shutil.rmtree(path)
            created = now_iso()
            repo = GitRepo.init(
                path,
                {".gitattributes": gitattributes(ref.repo_type)},
                "initial commit",
                namespace,
                created,
            )
            with self.db.tx() as conn:
                rowid = self.db.insert_repo(
                    conn,
                    {
                        "repo_type": ref.repo_type,
                        "repo_id": ref.repo_id,
                        "namespace": namespace,
                        "object_id": secrets.token_hex(12),
                        "private": int(private),
                        "sha": repo.resolve("main"),
                        "created_at": created,
                        "last_modified": created,
                    },
                )
        row = self.db.get_repo(ref.repo_type, ref.repo_id)
        assert row is not None and row.rowid == rowid
        return self.refresh(row)

    def move_repo(self, who: Identity | None, old: RepoRef, new: RepoRef) -> RepoRow:
        """Rename or transfer a repo (its git directory and row); the old id keeps leading
        to it until a repo takes that name."""
        row = self.writable(who, old)
        if new.namespace is None or new.repo_type != old.repo_type:
            raise ApiError(400, "toRepo must be 'namespace/name', of the same type")
        self.require_write(who, new.namespace)
        try:
            check_name(new.repo_id.split("/", 1)[1], "Repository name")
        except UsageError as exc:
            raise ApiError(400, exc.message) from None
        if new.repo_id == row.repo_id:
            return row  # already so named
        first, second = sorted([RepoRef(row.repo_type, row.repo_id), new], key=lambda r: r.repo_id)
        with self.repo_lock(first), self.repo_lock(second):
            taken = self.db.get_repo(new.repo_type, new.repo_id, follow=False)
            if taken is not None and taken.rowid != row.rowid:
                kind = {"model": "model", "dataset": "dataset", "space": "space"}[new.repo_type]
                raise ApiError(409, f"A {kind} repository called {new.repo_id} already exists")
            src = self.git_path(row.repo_type, row.repo_id)
            dst = self.git_path(new.repo_type, new.repo_id)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src != dst:
                os.rename(src, dst)
            try:
                self.db.rename_repo(
                    row.rowid, row.repo_type, row.repo_id, new.repo_id, new.namespace
                )
            except BaseException:
                if src != dst:
                    os.rename(dst, src)  # the row did not move: neither does the repo
                raise
        moved = self.db.get_repo(new.repo_type, new.repo_id)
        assert moved is not None
        return self.refresh(moved)

    def delete_repo(self, who: Identity | None, ref: RepoRef) -> None:
        row = self.writable(who, ref)
        with self.repo_lock(ref):
            self.db.delete_repo(row.rowid)
            path = self.git_path(row.repo_type, row.repo_id)
            if path.exists():
                trash = path.with_name(f".deleted-{secrets.token_hex(6)}-{path.name}")
                os.replace(path, trash)
                shutil.rmtree(trash, ignore_errors=True)

    def update_settings(
        self, who: Identity | None, ref: RepoRef, private: bool | None, gated: str | None
    ) -> RepoRow:
        row = self.writable(who, ref)
        values: dict[str, object] = {}
        if private is not None:
            values["private"] = int(private)
        if gated is not None:
            values["gated"] = gated
        if values:
            with self.db.tx() as conn:
                self.db.update_repo(conn, row.rowid, values)
        return self.readable(who, ref)

    # -- the index --------------------------------------------------------------------------
    def derive(self, row: RepoRow, commit: str) -> dict[str, Any]:
        """Index fields (tags, card data, pipeline tag, …) of ``row`` at ``commit``.

        Never raises for what a repo holds: if deriving fails (a card or config that breaks
        a parser, say), the fields are the bare minimum (files, ``region:us``) and the
        failure is logged, so one odd repo never stops a commit, a listing or a start-up.
        """
        try:
            return self._derive(row, commit)
        except Exception as exc:
            if storage_error(exc):
                raise
            log.warning(
                "Skipped the metadata of %s %s at %s: %s: %s",
                row.repo_type,
                row.repo_id,
                commit[:12],
                type(exc).__name__,
                exc,
            )
            return self._bare_fields(row, commit)

    def _bare_fields(self, row: RepoRow, commit: str) -> dict[str, Any]:
        try:
            paths = sorted(self.git(row).files(commit))
        except Exception:
            paths = []
        meta = {"tags": ["region:us"], "siblings": paths}
        return {"meta": meta, "pipeline_tag": None, "library_name": None, "num_parameters": None}

    def _derive(self, row: RepoRow, commit: str) -> dict[str, Any]:
        repo = self.git(row)
        files = repo.files(commit)
        paths = sorted(files)

        def read(path: str) -> bytes | None:
            entry = files.get(path)
            return repo.read_blob(entry.oid) if entry else None

        readme, config, tokenizer_config = metadata.read_repo_files(paths, read)
        problem = metadata.unsafe_card(readme)
        if problem is not None:  # only a commit made around the check gets here
            log.warning("Skipped the card data of %s at %s: %s", row.repo_id, commit[:12], problem)
        if row.repo_type != "model":
            derived = metadata.dataset_metadata(paths, readme)
        else:
            params: dict[str, int] = {}
            for path in paths:
                if path.endswith(".safetensors"):
                    for dtype, n in metadata.safetensors_parameters(
                        self.file_head(repo, files[path].oid, 1 << 20)
                    ).items():
                        params[dtype] = params.get(dtype, 0) + n
            derived = metadata.model_metadata(paths, readme, config, params, tokenizer_config)
        derived["meta"]["usedStorage"] = self.used_storage(repo, list(files.values()))
        return derived

    def used_storage(self, repo: GitRepo, files: list[Any]) -> int:
        """Bytes of all files, counting LFS files at their real size."""
        pointers = repo.read_blobs([e.oid for e in files if e.size <= 1024])
        total = 0
        for e in files:
            pointer = parse_lfs_pointer(pointers.get(e.oid, b""))
            total += pointer[1] if pointer else e.size
        return total

    def file_head(self, repo: GitRepo, blob: str, nbytes: int) -> bytes:
        """The first bytes of a file's content, through its LFS pointer when it has one."""
        data = repo.read_blob(blob)
        pointer = parse_lfs_pointer(data)
        if pointer is None:
            return data[:nbytes]
        path = self.lfs.path(pointer[0])
        if not path.exists():
            return b""
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) == 8:  # a safetensors header announces its own length
                length = int.from_bytes(head, "little")
                return head + fh.read(min(length, 100 << 20))
            return head

    def refresh(self, row: RepoRow) -> RepoRow:
        """Re-derive a repo's index row from git (``main``)."""
        repo = self.git(row)
        head = repo.resolve("main")
        if head is None:
            return row
        derived = self.derive(row, head)
        last = repo.log(head, limit=1)
        with self.db.tx() as conn:
            self.db.update_repo(
                conn,
                row.rowid,
                {
                    **derived,
                    "sha": head,
                    "last_modified": last[0].date if last else row.last_modified,
                },
            )
        fresh = self.db.get_repo(row.repo_type, row.repo_id)
        assert fresh is not None
        return fresh

    def resync(self) -> int:
        """Bring every row in line with git (after a crash between a ref and a row update).

        A repo that cannot be brought in line is logged and skipped: the server still starts
        and serves it (and all the others) from git.
        """
        fixed = 0
        for row in self.db.all_repos():
            try:
                path = self.git_path(row.repo_type, row.repo_id)
                if not path.exists():
                    continue
                if GitRepo(path).resolve("main") != row.sha:
                    self.refresh(row)
                    fixed += 1
            except Exception as exc:
                log.error(
                    "Start-up: could not re-index %s %s (%s: %s); serving it as it is",
                    row.repo_type,
                    row.repo_id,
                    type(exc).__name__,
                    exc,
                )
        return fixed

    def reclaim_temporaries(self) -> storage.Reclaimed:
        """Remove the temporaries interrupted writes left (see ``storage``); log what went."""
        try:
            done = storage.reclaim(self.data_dir)
        except OSError as exc:  # never a reason not to start
            log.warning("Could not remove temporaries in %s: %s", self.data_dir, exc)
            return storage.Reclaimed()
        if done.count:
            log.info("Removed %d temporaries (%d bytes) left by writes", done.count, done.bytes)
        return done


def storage_error(exc: BaseException) -> bool:
    """A full disk or a database failure: the caller's problem to report, not a repo's."""
    return disk_full(exc) or isinstance(exc, sqlite3.Error)


def _repo_exists(ref: RepoRef) -> ApiError:
    kind = {"model": "model", "dataset": "dataset", "space": "space"}[ref.repo_type]
    return ApiError(
        409,
        f"You already created this {kind} repo",
        body={"error": f"You already created this {kind} repo", "url": ""},
    )
