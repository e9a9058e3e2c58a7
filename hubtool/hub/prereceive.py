"""The checks a ``git push`` to the local Hub passes before any ref moves: the ones the
commit API makes (paths, files over 10 MiB outside LFS, LFS pointers to objects this repo
was sent, a card whose metadata parses within bounds), on every new commit, and who may
update which ref (writers any branch or tag but never delete ``main``; a pull request's
author its own ``refs/pr/N``).

It runs as git's ``pre-receive`` hook (``gitpush`` installs it): the pushed objects are in
git's quarantine until it exits 0, so a refused push leaves the repository as it was.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hubtool.hub.commits import MAX_REGULAR_FILE, check_card, check_path, too_large
from hubtool.hub.gitstore import ZERO_SHA, GitRepo, parse_lfs_pointer, ref_name_problem
from hubtool.hub.protocol import ApiError
from hubtool.hub.service import HubService

MAX_NEW_COMMITS = 10_000
ENV = ("HUBTOOL_PUSH_DATA", "HUBTOOL_PUSH_TYPE", "HUBTOOL_PUSH_REPO", "HUBTOOL_PUSH_USER")


class Refused(Exception):
    """The push is refused; the message is shown to the user (``remote: …``)."""


def main() -> int:
    data, repo_type, repo_id, user = (os.environ.get(k, "") for k in ENV)
    writer = os.environ.get("HUBTOOL_PUSH_WRITE") == "1"
    updates = [line.split() for line in sys.stdin.read().splitlines() if line.strip()]
    try:
        check_push(Path(data), repo_type, repo_id, user, writer, updates)
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the check itself failed: refuse in one line, never a traceback
        print(f"error: the push could not be checked ({exc}); nothing was written", file=sys.stderr)
        return 1
    return 0


def check_push(
    data: Path, repo_type: str, repo_id: str, user: str, writer: bool, updates: list[list[str]]
) -> None:
    svc = HubService(data)
    row = svc.db.get_repo(repo_type, repo_id)
    if row is None:
        raise Refused(f"the repository {repo_id} no longer exists")
    repo = GitRepo(Path.cwd() if not os.environ.get("GIT_DIR") else Path(os.environ["GIT_DIR"]))
    for old, new, ref in updates:
        _check_ref(svc, row.rowid, ref, old, new, user, writer)
        if new != ZERO_SHA and ref.startswith(("refs/heads/", "refs/pr/")):
            _check_commits(svc, row.rowid, repo, new)


def _check_ref(
    svc: HubService, rowid: int, ref: str, old: str, new: str, user: str, writer: bool
) -> None:
    if not ref.startswith(("refs/heads/", "refs/tags/", "refs/pr/")):
        raise Refused(f"{ref}: only branches, tags and refs/pr/N can be pushed")
    problem = ref_name_problem(ref.split("/", 2)[2])
    if problem:
        raise Refused(f"{ref}: {problem}")
    if ref == "refs/heads/main" and new == ZERO_SHA:
        raise Refused("Cannot delete refs/heads/main: it is the default branch")
    if writer:
        return
    num = ref.removeprefix("refs/pr/")
    mine = ref.startswith("refs/pr/") and num.isdigit() and new != ZERO_SHA
    try:
        mine = mine and svc.discussions.get(rowid, int(num))["author"] == user
    except ApiError:  # no such pull request
        mine = False
    if not mine:
        raise Refused(f"{ref}: you may write only to your own pull requests in this repository")


def _check_commits(svc: HubService, rowid: int, repo: GitRepo, tip: str) -> None:
    new = repo._git("rev-list", "--parents", tip, "--not", "--all").stdout.decode().split("\n")
    commits = [line.split() for line in new if line.strip()]
    if len(commits) > MAX_NEW_COMMITS:
        raise Refused(f"a push of more than {MAX_NEW_COMMITS:,} commits at once")
    for commit, *parents in commits:
        _check_changes(svc, rowid, repo, commit, parents[0] if parents else None)
    readme = repo.entry(tip, "README.md")
    if readme is not None and readme.size <= 1 << 20:
        _api(check_card, repo.read_blob(readme.oid))


def _check_changes(
    svc: HubService, rowid: int, repo: GitRepo, commit: str, parent: str | None
) -> None:
    args = ["diff-tree", "-r", "-z", "--no-commit-id", "--no-renames"]
    args += [parent, commit] if parent else ["--root", commit]
    fields = repo._git(*args).stdout.decode(errors="replace").split("\0")
    blobs: dict[str, str] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        parts = meta.lstrip(":").split()
        if len(parts) < 5 or parts[4][0] == "D" or parts[1] == "160000":
            continue
        _api(check_path, path)
        blobs[path] = parts[3]
    sizes = _sizes(repo, list(blobs.values()))
    small = repo.read_blobs([oid for oid in blobs.values() if sizes.get(oid, 0) <= 1024])
    pointers = {p: parse_lfs_pointer(small[o]) for p, o in blobs.items() if o in small}
    linked = svc.db.linked_lfs(rowid, [ptr[0] for ptr in pointers.values() if ptr])
    for path, oid in blobs.items():
        if sizes.get(oid, 0) > MAX_REGULAR_FILE:
            raise Refused(too_large(path))
        pointer = pointers.get(path)
        if pointer and (linked.get(pointer[0]) != pointer[1] or not svc.lfs.has(*pointer)):
            raise Refused(
                f"{path} points to LFS object {pointer[0]}, which was never uploaded to this "
                "repo: push with git-lfs installed (`git lfs install`)"
            )


def _sizes(repo: GitRepo, oids: list[str]) -> dict[str, int]:
    if not oids:
        return {}
    out = repo._git("cat-file", "--batch-check", input="\n".join(oids).encode() + b"\n").stdout
    sizes = {}
    for line in out.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            sizes[parts[0]] = int(parts[2])
    return sizes


def _api(check: object, value: object) -> None:
    """A commit-API check, its 400 turned into a refusal with the same words."""
    try:
        check(value)  # type: ignore[operator]
    except ApiError as exc:
        raise Refused(exc.message) from None


if __name__ == "__main__":
    raise SystemExit(main())
