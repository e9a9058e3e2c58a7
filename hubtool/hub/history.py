"""What a repository keeps, and how its owner trims it: ``super-squash`` (a branch's history
made one commit, its files unchanged) and the ``lfs-files`` routes (the LFS objects a repo
holds, with a path that uses each, and their permanent deletion)."""

from __future__ import annotations

from typing import Any

from hubtool.hub.gitstore import RefConflict, git_blob_id, lfs_pointer, parse_lfs_pointer
from hubtool.hub.protocol import ApiError, Response, bad_request
from hubtool.hub.router import ID, Ctx, RouteTable, T
from hubtool.hub.routes import paginated
from hubtool.hub.service import RepoRef, now_iso

route = RouteTable()
MAX_DELETIONS = 1000  # per request, as the client sends them


@route("POST", rf"/api/{T}/{ID}/super-squash/(?P<rev>[^/]+)")
def super_squash(c: Ctx) -> Response:
    row = c.svc.writable(c.who, c.ref)
    assert c.who is not None
    body = c.req.json_object() if c.req.content_length else {}
    message = body.get("message") or f"Super-squash branch '{c.params['rev']}'"
    if not isinstance(message, str) or "\0" in message or len(message) > 10_000:
        raise bad_request("'message' must be text")
    repo = c.svc.git(row)
    rev = c.params["rev"]  # a branch, or a ref as the dataset viewer's refs/convert/parquet
    ref = rev if rev.startswith("refs/") else f"refs/heads/{rev}"
    with c.svc.repo_lock(c.ref):
        head = repo.resolve(ref)
        if head is None:
            raise ApiError(404, f"Invalid rev id: {c.params['rev']}", "RevisionNotFound")
        tree = repo._git("rev-parse", f"{head}^{{tree}}").stdout.decode().strip()
        commit = repo.commit_tree(tree, [], message, c.who.user, now_iso())
        try:
            repo.update_ref(ref, commit, head)
        except RefConflict:
            raise ApiError(409, "The branch moved while it was squashed; try again") from None
    if ref == "refs/heads/main":
        c.svc.refresh(row)
    return Response.json({"success": True, "commitId": commit})


@route("GET", rf"/api/{T}/{ID}/lfs-files")
def lfs_files(c: Ctx) -> Response:
    row = c.svc.writable(c.who, c.ref)
    linked = c.svc.db.lfs_links_of(row.rowid)
    paths = _lfs_paths(c, row)
    items: list[dict[str, Any]] = [
        {
            "fileOid": oid,
            "oid": oid,
            "filename": paths.get(oid, ("", None))[0],
            "ref": paths.get(oid, ("", None))[1],
            "pushedAt": pushed or now_iso(),
            "size": size,
        }
        for oid, size, pushed in linked
    ]
    return paginated(c, items, 1000)


def _lfs_paths(c: Ctx, row: Any) -> dict[str, tuple[str, str | None]]:
    """For each LFS object a branch tip points to: (a path, that branch)."""
    repo = c.svc.git(row)
    found: dict[str, tuple[str, str | None]] = {}
    for name, sha in repo.refs():
        if not name.startswith("refs/heads/"):
            continue
        files = repo.files(sha)
        small = repo.read_blobs([e.oid for e in files.values() if e.size <= 1024])
        for path, entry in files.items():
            pointer = parse_lfs_pointer(small.get(entry.oid, b""))
            if pointer and pointer[0] not in found:
                found[pointer[0]] = (path, name.removeprefix("refs/heads/"))
    return found


@route("POST", rf"/api/{T}/{ID}/lfs-files/batch")
def delete_lfs_files(c: Ctx) -> Response:
    """Objects unlinked from the repo, and deleted from the store when no other repo holds
    them: a pointer still in the history then finds nothing (what 'permanently' means)."""
    row = c.svc.writable(c.who, c.ref)
    deletions = c.req.json_object().get("deletions")
    if not isinstance(deletions, dict):
        raise bad_request("A deletion needs 'deletions': {'sha': [...]}")
    shas = deletions.get("sha")
    if not isinstance(shas, list) or len(shas) > MAX_DELETIONS:
        raise bad_request(f"'deletions.sha' must be a list of at most {MAX_DELETIONS} oids")
    if not all(isinstance(s, str) and len(s) == 64 for s in shas):
        raise bad_request("Each oid must be a sha256")
    if deletions.get("rewriteHistory", True):
        _rewrite_without(c, row, set(shas))
    for oid in shas:
        if c.svc.db.unlink_lfs(row.rowid, oid) == 0:
            path = c.svc.lfs.path(oid)
            if path.is_file():
                path.unlink()
    return Response.json({"success": True})


def _rewrite_without(c: Ctx, row: Any, oids: set[str]) -> None:
    """Every commit of every ref rewritten without the files that point to ``oids``."""
    repo = c.svc.git(row)
    sizes = c.svc.db.linked_lfs(row.rowid, oids)
    blobs = {git_blob_id(lfs_pointer(oid, size)) for oid, size in sizes.items()}
    with c.svc.repo_lock(c.ref):
        mapped = repo.without_blobs(blobs)
        for name, sha in repo.refs():
            if sha in mapped and not name.startswith("refs/tags/"):
                repo.update_ref(name, mapped[sha], sha)
            elif sha in mapped:  # a tag: the rewritten commit, lightweight
                repo.delete_ref(name)
                repo.update_ref(name, mapped[sha], "0" * 40)
    c.svc.refresh(row)


@route("POST", rf"/api/{T}/{ID}/lfs-files/duplicate")
def duplicate_lfs_files(c: Ctx) -> Response:
    """LFS objects of this repo made the target repo's too (``copy_files`` across repos),
    without sending their bytes again; those this repo does not hold are listed as failed."""
    row = c.svc.ungated(c.who, c.svc.readable(c.who, c.ref))
    body = c.req.json_object()
    target, files = body.get("target"), body.get("files")
    if not isinstance(target, dict) or not isinstance(files, list) or len(files) > MAX_DELETIONS:
        raise bad_request(f"A duplication needs 'target' and at most {MAX_DELETIONS} 'files'")
    kind = {"model": "model", "dataset": "dataset", "space": "space"}.get(str(target.get("type")))
    if kind is None or not isinstance(target.get("name"), str):
        raise bad_request("'target' needs a 'type' (model|dataset|space) and a 'name'")
    dest = c.svc.writable(c.who, RepoRef(kind, target["name"]))
    wanted = [str(f.get("sha256")) for f in files if isinstance(f, dict)]
    held = c.svc.db.linked_lfs(row.rowid, wanted)
    failed = []
    for sha in wanted:
        size = held.get(sha)
        if size is None or not c.svc.lfs.has(sha, size):
            failed.append({"sha256": str(sha)[:64], "error": "not an LFS file of this repo"})
            continue
        c.svc.db.link_lfs(dest.rowid, sha, size)
    return Response.json({"failed": failed})
