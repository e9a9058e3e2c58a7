"""Bare git repositories on disk: the local Hub's storage of record.

Blobs are written as loose objects from Python (their name is the git blob SHA-1, the
``oid`` the Hub reports); trees and commits are made with git's own plumbing through a
temporary index, and a branch moves with ``git update-ref NEW OLD``: an atomic
compare-and-swap on git's lock file. A process killed at any moment therefore leaves a
branch at its old or its new commit, never between (loose objects it wrote are unreferenced
and harmless).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import subprocess
import tempfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock
from typing import Any

ZERO_SHA = "0" * 40
LFS_POINTER_MAX = 1024
_LFS_POINTER = re.compile(
    rb"^version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n$"
)
_SAFE_REV = re.compile(r"^[A-Za-z0-9._/\-]{1,255}$")


_WRITES = {
    "config",
    "read-tree",
    "update-index",
    "write-tree",
    "commit-tree",
    "mktag",
    "update-ref",
}
_DISK_FULL = ("No space left on device", "Disk quota exceeded", "Out of diskspace")
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


class GitError(Exception):
    """A git command failed in a way the caller did not expect."""


def ref_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid branch or tag name (git check-ref-format --branch), or None."""
    if not name:
        return "it is empty"
    if name in ("HEAD", "@") or name.startswith("-"):
        return "it is reserved ('HEAD', '@') or starts with '-'"
    if _BAD_REF_CHARS.search(name):
        return "it contains a space, a control character or one of ~ ^ : ? * [ \\"
    if ".." in name or "@{" in name or "//" in name:
        return "it contains '..', '@{' or '//'"
    if name.startswith("/") or name.endswith(("/", ".")):
        return "it starts with '/' or ends with '/' or '.'"
    for part in name.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return "a component starts with '.' or ends with '.lock'"
    return None


class RefConflict(Exception):
    """A compare-and-swap on a ref lost: the ref moved, or already exists."""


@dataclass(frozen=True)
class TreeEntry:
    path: str
    kind: str  # "file" or "directory"
    oid: str  # blob or tree SHA-1
    size: int  # size of the git object (the pointer, for LFS files)


@dataclass(frozen=True)
class CommitInfo:
    oid: str
    author: str
    date: str  # ISO 8601, UTC
    title: str
    message: str


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def git_blob_id(data: bytes) -> str:
    """The SHA-1 git gives a blob of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def parse_lfs_pointer(data: bytes) -> tuple[str, int] | None:
    """(sha256, size) when ``data`` is a git-lfs pointer file, else None."""
    if len(data) > LFS_POINTER_MAX:
        return None
    m = _LFS_POINTER.match(data)
    return (m.group(1).decode(), int(m.group(2))) if m else None


class _LRU(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = Lock()

    def get_or(self, key, make):
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            if len(self) > self.size:
                self.popitem(last=False)
        return value


# Trees and blobs are content-addressed, so caching by (repo, commit, …) is always correct.
_TREE_CACHE = _LRU(512)


class GitRepo:
    """One bare repository."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- plumbing ---------------------------------------------------------------------------
    def _git(
        self,
        *args: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        full_env = {**os.environ, "GIT_DIR": str(self.path), "LC_ALL": "C"}
        full_env.pop("GIT_INDEX_FILE", None)
        if env:
            full_env.update(env)
        proc = subprocess.run(
            ["git", *args], input=input, env=full_env, capture_output=True, check=False
        )
        if proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace").strip()
            writes = args[0] in _WRITES
            if writes and (any(text in stderr for text in _DISK_FULL) or self._disk_full()):
                raise OSError(errno.ENOSPC, f"git {args[0]}: {stderr}")  # a 507, not a bug
            if check:
                raise GitError(f"git {args[0]} failed: {stderr}")
        return proc

    def _disk_full(self) -> bool:
        """Whether the repository's file system is out of space (git does not always say)."""
        try:
            fs = os.statvfs(self.path)
        except (OSError, AttributeError):
            return False
        return fs.f_bavail * fs.f_frsize < 64 * 1024 or fs.f_favail == 0

    @classmethod
    def init(
        cls, path: Path, files: dict[str, bytes], message: str, author: str, date: str
    ) -> GitRepo:
        """Create a bare repository whose ``main`` holds ``files`` in one commit."""
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "-q", "--bare", "-b", "main", str(path)],
            check=True,
            capture_output=True,
        )
        repo = cls(path)
        repo._git("config", "http.receivepack", "false")
        repo._git("config", "core.logAllRefUpdates", "false")
        adds = {p: ("100644", repo.write_blob(data)) for p, data in files.items()}
        commit = repo.make_commit(None, adds, set(), message, "", author, date)
        repo.update_ref("refs/heads/main", commit, ZERO_SHA)
        return repo

    def write_blob(self, data: bytes) -> str:
        """Store ``data`` as a loose blob; returns its git SHA-1."""
        header = b"blob %d\0" % len(data)
        oid = git_blob_id(data)
        target = self.path / "objects" / oid[:2] / oid[2:]
        if target.exists():
            return oid
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="tmp_obj_")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(zlib.compress(header + data, 1))
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except BaseException:  # a full disk, most likely: leave no half-written temporary
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return oid

    def read_blob(self, oid: str) -> bytes:
        return self._git("cat-file", "blob", oid).stdout

    def read_blobs(self, oids: list[str]) -> dict[str, bytes]:
        """Many small blobs in one ``git cat-file --batch`` call."""
        if not oids:
            return {}
        out = self._git(
            "cat-file", "--batch", input="".join(o + "\n" for o in oids).encode()
        ).stdout
        result, pos = {}, 0
        for oid in oids:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].split()
            if len(header) < 3:  # "<oid> missing"
                pos = nl + 1
                continue
            size = int(header[2])
            result[oid] = out[nl + 1 : nl + 1 + size]
            pos = nl + 1 + size + 1
        return result

    # -- revisions and refs -----------------------------------------------------------------
    def resolve(self, rev: str) -> str | None:
        """The commit SHA a branch, tag, ``refs/…`` name or (full or short) SHA names."""
        if not _SAFE_REV.match(rev) or rev.startswith("-") or ".." in rev:
            return None
        candidates = (
            [rev] if rev.startswith("refs/") else [f"refs/heads/{rev}", f"refs/tags/{rev}", rev]
        )
        for cand in candidates:
            proc = self._git("rev-parse", "-q", "--verify", f"{cand}^{{commit}}", check=False)
            if proc.returncode == 0:
                return proc.stdout.decode().strip()
        return None

    def refs(self) -> list[tuple[str, str]]:
        """(refname, commit) for every branch, tag and PR ref; tags are peeled."""
        fmt = "%(refname)%00%(objectname)%00%(*objectname)"
        out = self._git("for-each-ref", f"--format={fmt}").stdout.decode()
        refs = []
        for line in out.splitlines():
            name, obj, peeled = line.split("\0")
            refs.append((name, peeled or obj))
        return refs

    def update_ref(self, ref: str, new: str, old: str) -> None:
        """Move ``ref`` to ``new`` only if it is at ``old`` (ZERO_SHA: must not exist).

        ``RefConflict`` only when the ref really moved (or exists); any other failure is a
        ``GitError`` (a full disk an ``OSError``), so callers never retry a lost cause.
        """
        proc = self._git("update-ref", ref, new, old, check=False)
        if proc.returncode == 0:
            return
        stderr = proc.stderr.decode(errors="replace").strip()
        current = self._git("rev-parse", "-q", "--verify", ref, check=False)
        now = current.stdout.decode().strip() if current.returncode == 0 else ZERO_SHA
        if now != old:
            raise RefConflict(stderr)
        raise GitError(f"git update-ref {ref} failed: {stderr}")

    def delete_ref(self, ref: str) -> None:
        self._git("update-ref", "-d", ref)

    def create_annotated_tag(
        self, name: str, commit: str, message: str, author: str, date: str
    ) -> str:
        body = (
            f"object {commit}\ntype commit\ntag {name}\n"
            f"tagger {author} <{author}@hubtool.local> {_git_date(date)}\n\n{message}\n"
        )
        return self._git("mktag", input=body.encode()).stdout.decode().strip()

    # -- trees ------------------------------------------------------------------------------
    def list_tree(self, commit: str, path: str = "", recursive: bool = False) -> list[TreeEntry]:
        """Entries under ``path`` at ``commit`` (git order); directories included."""
        key = (str(self.path), commit, path, recursive)
        return list(_TREE_CACHE.get_or(key, lambda: self._list_tree(commit, path, recursive)))

    def _list_tree(self, commit: str, path: str, recursive: bool) -> tuple[TreeEntry, ...]:
        if "\0" in path or "\0" in commit:  # no such path; and no argument can hold one
            return ()
        args = ["ls-tree", "-z", "-l"]
        if recursive:
            args += ["-r", "-t"]
        target = f"{commit}:{path}" if path else commit
        proc = self._git(*args, target, check=False)
        if proc.returncode != 0:
            return ()
        entries = []
        prefix = f"{path}/" if path else ""
        for rec in proc.stdout.split(b"\0"):
            if not rec:
                continue
            meta, name = rec.split(b"\t", 1)
            _mode, kind, oid, size = meta.split()
            is_tree = kind == b"tree"
            entries.append(
                TreeEntry(
                    path=prefix + name.decode(),
                    kind="directory" if is_tree else "file",
                    oid=oid.decode(),
                    size=0 if is_tree else int(size),
                )
            )
        return tuple(entries)

    def entry(self, commit: str, path: str) -> TreeEntry | None:
        """The file or directory at ``path``, or None."""
        parent, _, _name = path.rpartition("/")
        for e in self.list_tree(commit, parent):
            if e.path == path:
                return e
        return None

    def files(self, commit: str) -> dict[str, TreeEntry]:
        return {e.path: e for e in self.list_tree(commit, "", True) if e.kind == "file"}

    # -- commits ----------------------------------------------------------------------------
    def make_commit(
        self,
        parent: str | None,
        adds: dict[str, tuple[str, str]],
        deletes: set[str],
        title: str,
        description: str,
        author: str,
        date: str,
    ) -> str:
        """Write the tree ``parent`` + ``adds`` - ``deletes`` and a commit on it; returns its SHA.

        ``adds`` maps a path to (mode, blob oid). Nothing is referenced until ``update_ref``.
        """
        with tempfile.TemporaryDirectory(dir=self.path, prefix="tmp_index_") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            if parent:
                self._git("read-tree", parent, env=env)
            lines = [f"0 {ZERO_SHA}\t{p}" for p in sorted(deletes)]
            lines += [f"{mode} {oid}\t{p}" for p, (mode, oid) in sorted(adds.items())]
            if lines:
                self._git(
                    "update-index",
                    "-z",
                    "--index-info",
                    input="\0".join(lines).encode() + b"\0",
                    env=env,
                )
            tree = self._git("write-tree", env=env).stdout.decode().strip()
        message = title if not description else f"{title}\n\n{description}"
        return self.commit_tree(tree, [parent] if parent else [], message, author, date)

    def commit_tree(
        self, tree: str, parents: list[str], message: str, author: str, date: str
    ) -> str:
        """A commit of ``tree`` on ``parents`` by ``author`` (not referenced yet)."""
        gdate = _git_date(date)
        ident = {
            "GIT_AUTHOR_NAME": author,
            "GIT_AUTHOR_EMAIL": f"{author}@hubtool.local",
            "GIT_COMMITTER_NAME": author,
            "GIT_COMMITTER_EMAIL": f"{author}@hubtool.local",
            "GIT_AUTHOR_DATE": gdate,
            "GIT_COMMITTER_DATE": gdate,
        }
        args = ["commit-tree", tree] + [a for p in parents for a in ("-p", p)]
        return self._git(*args, input=message.encode(), env=ident).stdout.decode().strip()

    def merge(
        self, base: str, other: str, message: str, author: str, date: str
    ) -> tuple[str | None, list[str]]:
        """(merge commit of ``other`` into ``base``, []) or (None, conflicting paths): a
        real three-way merge (``git merge-tree``); nothing is referenced until
        ``update_ref``. ``other`` already in ``base``: (base, [])."""
        tree, conflicts = self._merge_tree(base, other)
        if tree is None or tree == base:
            return tree, conflicts
        return self.commit_tree(tree, [base, other], message, author, date), []

    def merge_conflicts(self, base: str, other: str) -> list[str]:
        """The paths a merge of ``other`` into ``base`` would conflict on."""
        return self._merge_tree(base, other)[1]

    def _merge_tree(self, base: str, other: str) -> tuple[str | None, list[str]]:
        """(merged tree, []), (None, conflicting paths), or (base, []) when ``other`` is in
        ``base`` already."""
        if self._git("merge-base", "--is-ancestor", other, base, check=False).returncode == 0:
            return base, []
        args = ("merge-tree", "--write-tree", "--name-only", "-z", base, other)
        proc = self._git(*args, check=False)
        fields = proc.stdout.decode(errors="replace").split("\0")
        if proc.returncode == 0:
            return fields[0].strip(), []
        if proc.returncode != 1:
            raise GitError(f"git merge-tree failed: {proc.stderr.decode(errors='replace')}")
        paths = []
        for field in fields[1:]:  # the conflicted paths, up to an empty field
            if not field:
                break
            paths.append(field)
        return None, sorted(set(paths))

    def without_blobs(self, blobs: set[str], limit: int = 10_000) -> dict[str, str]:
        """Every ref's history rewritten with the files holding one of ``blobs`` taken out
        of every commit (authors, dates and messages kept); {old commit: new} of those that
        changed. Refs are not moved: ``update_ref`` each one."""
        order = self._git("rev-list", "--topo-order", "--reverse", "--all").stdout.split()
        if len(order) > limit:
            raise GitError(f"more than {limit:,} commits to rewrite")
        mapped: dict[str, str] = {}
        for raw in order:
            commit = raw.decode()
            line = self._git("rev-list", "--parents", "-n", "1", commit).stdout.decode().split()
            parents = [mapped.get(p, p) for p in line[1:]]
            listing = self._git("ls-tree", "-r", "-z", commit).stdout.decode(errors="replace")
            doomed = [
                e.split("\t", 1)[1] for e in listing.split("\0") if e and e.split()[2] in blobs
            ]
            if not doomed and parents == line[1:]:
                continue
            mapped[commit] = self._rewritten(commit, parents, doomed)
        return mapped

    def _rewritten(self, commit: str, parents: list[str], doomed: list[str]) -> str:
        with tempfile.TemporaryDirectory(dir=self.path, prefix="tmp_index_") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            self._git("read-tree", commit, env=env)
            if doomed:  # mode 0: out of the index (works without a work tree)
                lines = [f"0 {ZERO_SHA}\t{p}" for p in doomed]
                self._git("update-index", "-z", "--index-info",
                          input="\0".join(lines).encode() + b"\0", env=env)  # fmt: skip
            tree = self._git("write-tree", env=env).stdout.decode().strip()
        fmt = "%an%x00%ae%x00%ad%x00%cn%x00%ce%x00%cd%x00%B"
        info = self._git("log", "-1", "--date=raw", f"--format={fmt}", commit).stdout.decode()
        an, ae, ad, cn, ce, cd, message = info.split("\0", 6)
        ident = {
            "GIT_AUTHOR_NAME": an, "GIT_AUTHOR_EMAIL": ae, "GIT_AUTHOR_DATE": ad,
            "GIT_COMMITTER_NAME": cn, "GIT_COMMITTER_EMAIL": ce, "GIT_COMMITTER_DATE": cd,
        }  # fmt: skip
        args = ["commit-tree", tree] + [a for p in parents for a in ("-p", p)]
        return self._git(*args, input=message.encode(), env=ident).stdout.decode().strip()

    def diff(self, base: str, other: str, limit: int = 1 << 20) -> str:
        """The changes of ``other`` since its merge base with ``base`` (``git diff A...B``),
        cut at ``limit`` bytes."""
        out = self._git("diff", "--no-color", "--no-ext-diff", f"{base}...{other}").stdout
        return out[:limit].decode(errors="replace")

    def log(
        self, commit: str, skip: int = 0, limit: int = 50, path: str | None = None
    ) -> list[CommitInfo]:
        fmt = "%H%x00%an%x00%at%x00%s%x00%B%x1e"
        args = ["log", f"--format={fmt}", f"--skip={skip}", f"-n{limit}", commit]
        out = self._git(*args, *(["--", path] if path else [])).stdout
        commits = []
        for rec in out.decode(errors="replace").split("\x1e"):
            rec = rec.strip("\n")
            if not rec:
                continue
            oid, author, ts, title, body = rec.split("\0", 4)
            message = body.strip("\n")
            message = message[len(title) :].lstrip("\n") if message.startswith(title) else message
            commits.append(CommitInfo(oid, author, iso_from_epoch(int(ts)), title, message))
        return commits

    def count_commits(self, commit: str) -> int:
        return int(self._git("rev-list", "--count", commit).stdout.decode().strip())


def _git_date(iso: str) -> str:
    """git's raw date (``<epoch> +0000``) from an ISO 8601 UTC timestamp."""
    from datetime import datetime

    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{int(dt.timestamp())} +0000"


def iso_from_epoch(ts: float) -> str:
    from datetime import datetime, timezone

    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
