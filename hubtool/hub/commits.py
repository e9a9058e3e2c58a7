"""Writing to a repository: preupload decisions and ndjson commits (spec §2.5).

A commit is applied on the branch head with a compare-and-swap. When the client named a
``parentCommit`` that is no longer the head, the answer is 412. Without one, a lost race is
retried on the new head, so concurrent writers lose nothing and history stays linear.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from hubtool.hub import discussions
from hubtool.hub.auth import Identity
from hubtool.hub.db import RepoRow
from hubtool.hub.gitstore import GitRepo, RefConflict, lfs_pointer, parse_lfs_pointer
from hubtool.hub.lfs import valid_oid
from hubtool.hub.metadata import unsafe_card
from hubtool.hub.protocol import ApiError, bad_request, parse_json, revision_not_found
from hubtool.hub.service import HubService, RepoRef, now_iso, storage_error

log = logging.getLogger(__name__)

MAX_REGULAR_FILE = 10 * 1024 * 1024
MAX_PATH = 1024
MAX_SEGMENT = 255
CAS_RETRIES = 20


def check_path(path: Any) -> str:
    """A repository path, or a 400 for anything that could escape or corrupt a tree."""
    if not isinstance(path, str) or not path:
        raise bad_request("Every file needs a non-empty 'path'")
    problem = None
    parts = path.split("/")
    if "\0" in path or any(ord(c) < 32 for c in path):
        problem = "contains a control character"
    elif path.startswith("/") or path.startswith("\\") or (len(path) > 1 and path[1] == ":"):
        problem = "is absolute"
    elif len(path.encode()) > MAX_PATH or any(len(p.encode()) > MAX_SEGMENT for p in parts):
        problem = f"is too long (at most {MAX_PATH} bytes, {MAX_SEGMENT} per segment)"
    elif any(p in ("", ".", "..") for p in parts):
        problem = "has an empty, '.' or '..' segment"
    elif any(p.lower() == ".git" for p in parts):
        problem = "is inside .git/"
    if problem:
        raise bad_request(f"Invalid path {path[:200]!r}: it {problem}")
    if path.startswith(("..\\", ".\\")):  # as the Hub: a path relative to no folder
        raise ApiError(422, f"Invalid path {path[:200]!r}: it is relative (starts with ..\\)")
    return path


@dataclass
class CommitRequest:
    summary: str
    description: str
    parent: str | None
    adds: dict[str, bytes] = field(default_factory=dict)  # path -> content (pointers for LFS)
    lfs: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # path -> (oid, size)
    deleted_files: list[str] = field(default_factory=list)
    deleted_folders: list[str] = field(default_factory=list)


def parse_commit(body: bytes | Iterable[bytes]) -> CommitRequest:
    """The ndjson body of ``POST …/commit/{rev}`` (bytes, or its lines as they arrive).

    Each operation is checked as its line arrives, so a bad one is refused before the rest of
    a large commit is read.
    """
    req = CommitRequest("", "", None)
    has_header = False
    lines = body.splitlines() if isinstance(body, bytes) else body
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = parse_json(line)
            key, value = item["key"], item["value"]
            if not isinstance(value, dict) or not isinstance(key, str):
                raise TypeError
        except ApiError as err:
            raise bad_request(f"Line {n} of the commit is not valid JSON: {err.message}") from None
        except (KeyError, TypeError, IndexError):
            raise bad_request(f"Line {n} of the commit is not a {{key, value}} object") from None
        if key == "header":
            has_header = True
            req.summary = str(value.get("summary") or "").strip()
            req.description = str(value.get("description") or "")
            req.parent = value.get("parentCommit")
        else:
            _add_operation(req, key, value)
    if not has_header:
        raise bad_request("The commit has no header line")
    if not req.summary:
        raise bad_request("The commit summary must not be empty")
    if "\0" in req.summary or "\0" in req.description:
        raise bad_request("The commit message must not contain a NUL character")
    if "README.md" in req.adds:
        check_card(req.adds["README.md"])
    return req


def too_large(path: str) -> str:
    return (
        f"Your push was rejected because it contains files larger than 10 MiB "
        f"({path}). Please use https://git-lfs.github.com/ to store large files."
    )


def check_card(readme: bytes) -> None:
    """400 for a card whose front matter cannot be parsed within bounds (an alias bomb…).

    Plain invalid YAML is accepted, as before: the repo's metadata just leaves the card out.
    """
    problem = unsafe_card(readme.decode("utf-8", errors="replace"))
    if problem is not None:
        raise bad_request(
            f"README.md was refused: its YAML metadata cannot be read safely ({problem}). "
            "Write the values out instead of using anchors and aliases."
        )


def _add_operation(req: CommitRequest, key: str, value: dict[str, Any]) -> None:
    raw = value.get("path")
    if key == "deletedFolder" and isinstance(raw, str):
        raw = raw.rstrip("/")
    path = check_path(raw)
    if key == "file":
        try:
            encoded = value.get("content") or ""
            if not isinstance(encoded, str):
                raise ValueError
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f"The content of {path!r} is not valid base64") from None
        if len(content) > MAX_REGULAR_FILE:
            raise bad_request(too_large(path))
        req.adds[path] = content
    elif key == "lfsFile":
        oid, size = value.get("oid"), value.get("size")
        if value.get("algo", "sha256") != "sha256" or not valid_oid(oid):
            raise bad_request(f"lfsFile {path!r} needs a sha256 'oid'")
        if size is not None and (not _is_int(size) or size < 0):
            raise bad_request(f"lfsFile {path!r} has an invalid size")
        req.lfs[path] = (oid, size)
    elif key == "deletedFile":
        req.deleted_files.append(path)
    elif key == "deletedFolder":
        req.deleted_folders.append(path)
    else:
        raise bad_request(f"Unknown commit operation {key!r}")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _resolve_lfs(svc: HubService, row: RepoRow, req: CommitRequest) -> None:
    """Turn lfsFile operations into pointer files; refuse objects never uploaded here."""
    linked = svc.db.linked_lfs(row.rowid, [oid for oid, _ in req.lfs.values()])
    for path, (oid, size) in req.lfs.items():
        stored = linked.get(oid)
        if stored is None or not svc.lfs.has(oid, stored):
            raise bad_request(
                f"LFS object {oid} for {path!r} was never uploaded to this repo; "
                "upload it through the LFS batch API first"
            )
        if size is not None and size != stored:
            raise bad_request(f"LFS object {oid} has size {stored}, not {size}")
        req.adds[path] = lfs_pointer(oid, stored)


def _changes(repo: GitRepo, head: str, req: CommitRequest) -> tuple[dict[str, Any], set[str]]:
    files = repo.files(head)
    deletes: set[str] = set()
    for path in req.deleted_files:
        under = [p for p in files if p.startswith(path + "/")] if path not in files else []
        if path not in files and not under:
            raise ApiError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        deletes.update(under or [path])  # a folder named without its slash: the folder
    for folder in req.deleted_folders:
        under = [p for p in files if p.startswith(folder + "/")]
        if not under:
            raise ApiError(404, f"A folder with this name doesn't exist: {folder}", "EntryNotFound")
        deletes.update(under)
    adds = {p: ("100644", repo.write_blob(data)) for p, data in req.adds.items()}
    deletes -= set(adds)
    return adds, deletes


def apply_commit(
    svc: HubService, who: Identity, row: RepoRow, branch: str, req: CommitRequest, create_pr: bool
) -> tuple[str, int | None]:
    """Apply ``req`` to ``branch`` (or to a new PR branch); (commit oid, PR number)."""
    repo = svc.git(row)
    _resolve_lfs(svc, row, req)
    pr_num = None
    with svc.repo_lock(RepoRef(row.repo_type, row.repo_id)):
        ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
        start = repo.resolve(ref)
        if start is None:  # unknown, or a tag or SHA: only branches take commits
            raise revision_not_found(branch)
        if create_pr:
            pr_num = discussions.open_pull_request(svc, row.rowid, req.summary, who.user, ref)
            ref = f"refs/pr/{pr_num}"
            repo.update_ref(ref, start, "0" * 40)
        for _ in range(CAS_RETRIES):
            head = repo.resolve(ref) or start
            if req.parent and req.parent != head and not create_pr:
                raise ApiError(
                    412,
                    "The branch was updated since you opened this page. Please refresh and "
                    "try again. "
                    f"(parent {req.parent} is not the head {head})",
                )
            adds, deletes = _changes(repo, head, req)
            commit = repo.make_commit(
                head, adds, deletes, req.summary, req.description, who.user, now_iso()
            )
            try:
                repo.update_ref(ref, commit, head)
                if ref.startswith("refs/pr/"):
                    discussions.commit_event(svc, row.rowid, ref, req.summary, commit, who.user)
                break
            except RefConflict:
                continue  # another process moved the branch: re-apply on its new head
        else:
            raise ApiError(409, "another conflicting operation is in progress")
    if ref == "refs/heads/main":
        try:
            svc.refresh(row)
        except Exception as exc:  # the commit is in git: report it, heal the index at start
            if not storage_error(exc):
                raise
            log.error("Commit %s is in git but its index row is stale: %s", commit[:12], exc)
    return commit, pr_num


def lfs_patterns(repo: GitRepo, commit: str) -> list[str]:
    entry = repo.entry(commit, ".gitattributes")
    if entry is None:
        return []
    patterns = []
    for line in repo.read_blob(entry.oid).decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def matches(path: str, pattern: str) -> bool:
    """git-attribute matching: a pattern without '/' matches the basename."""
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(path, pattern.lstrip("/").replace("**/", "*").replace("/**", "*"))


def upload_mode(path: str, size: int, sample: bytes, patterns: list[str]) -> str:
    if size > MAX_REGULAR_FILE or any(matches(path, p) for p in patterns):
        return "lfs"
    if size > 1024 * 1024 and b"\0" in sample:
        return "lfs"
    return "regular"


def ignored(path: str, pattern: str) -> bool:
    """gitignore matching: ``name`` anywhere, ``dir/`` a directory anywhere, ``a/b`` from
    the root; a file is ignored when it or a directory above it matches (no ``!``)."""
    if pattern.startswith("!"):
        return False
    directory, pat = pattern.endswith("/"), pattern.rstrip("/")
    anchored = "/" in pat
    pat = pat.lstrip("/").replace("**/", "*").replace("/**", "/*")
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        if directory and i == len(parts):
            break  # the file itself is no directory
        text = "/".join(parts[:i]) if anchored else parts[i - 1]
        if fnmatch.fnmatchcase(text, pat):
            return True
    return False


def _ignore_lines(text: str) -> list[str]:
    lines = (ln.strip() for ln in text.splitlines()[:10_000])
    return [ln for ln in lines if ln and not ln.startswith("#")]


def preupload(
    svc: HubService, row: RepoRow, rev: str, files: Any, git_ignore: Any
) -> dict[str, Any]:
    """Decide ``regular``/``lfs`` for each file and report the oid already stored there."""
    if not isinstance(files, list):
        raise bad_request("'files' must be a list")
    repo = svc.git(row)
    head = svc.resolve(row, rev)
    patterns = lfs_patterns(repo, head)
    existing = repo.files(head)
    own = existing.get(".gitignore")  # the repo's own, then the one the client sends
    own = own if own is not None and own.size <= 1 << 20 else None
    ignore = _ignore_lines(repo.read_blob(own.oid).decode(errors="replace")) if own else []
    ignore += _ignore_lines(git_ignore) if isinstance(git_ignore, str) else []
    pointers = repo.read_blobs([e.oid for e in existing.values() if e.size <= 1024])
    answers = []
    for item in files:
        if not isinstance(item, dict):
            raise bad_request("Each entry of 'files' must be an object")
        path = check_path(item.get("path"))
        size = item.get("size")
        if not _is_int(size) or size < 0:
            raise bad_request(f"File {path!r} needs an integer 'size'")
        try:
            encoded = item.get("sample") or ""
            if not isinstance(encoded, str):
                raise ValueError
            sample = base64.b64decode(encoded)
        except (binascii.Error, ValueError):
            raise bad_request(f"The sample of {path!r} is not valid base64") from None
        mode = upload_mode(path, size, sample, patterns)
        if mode == "lfs" and size > svc.limits.max_lfs_object:
            raise ApiError(
                413,
                f"File {path!r} of {size:,} bytes is larger than this Hub's maximum of "
                f"{svc.limits.max_lfs_object:,} bytes per file (`hubtool hub serve "
                "--max-lfs-object`)",
            )
        answer: dict[str, Any] = {
            "path": path,
            "uploadMode": mode,
            "shouldIgnore": any(ignored(path, p) for p in ignore),
        }
        entry = existing.get(path)
        if entry is not None:
            pointer = parse_lfs_pointer(pointers.get(entry.oid, b""))
            if mode == "lfs" and pointer:
                answer["oid"] = pointer[0]
            elif mode == "regular" and not pointer:
                answer["oid"] = entry.oid
        answers.append(answer)
    return {"files": answers, "commitOid": head}
