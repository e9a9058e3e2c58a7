"""Moving bytes: resolve (downloads), the LFS batch API, the LFS "CDN", and git smart HTTP.

LFS downloads answer the resolve call with a 302 to the other loopback spelling of this
server (127.0.0.1 <-> localhost): a foreign origin for the client, as the Hub's CDN is
(spec §2.4.1). CDN and upload URLs carry an expiring HMAC signature instead of a token,
since the client sends no credentials there.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hubtool.hub import cas, gitpush
from hubtool.hub.gitstore import parse_lfs_pointer
from hubtool.hub.lfs import LfsMismatch, valid_oid
from hubtool.hub.protocol import ApiError, Request, Response, bad_request, repo_not_found
from hubtool.hub.ranges import file_chunks, ranged
from hubtool.hub.router import ID, Ctx, RouteTable
from hubtool.hub.service import REPO_TYPES, URL_PREFIX, RepoRef

log = logging.getLogger(__name__)
PREFIX = r"(?:(?P<t>datasets|spaces)/)?"
URL_TTL = 3600
UNGATED = ("README.md",)  # a gated repo shows its card to everyone, nothing else
LFS_JSON = "application/vnd.git-lfs+json"

route = RouteTable()


def _ref(c: Ctx) -> RepoRef:
    t = c.params.get("t")
    return RepoRef(REPO_TYPES[t] if t else "model", c.params["id"])


def foreign_origin(scheme_host: str) -> str:
    """The other loopback spelling of this server, or the same origin elsewhere."""
    parts = urlsplit(scheme_host)
    host = parts.hostname or ""
    swap = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host)
    if swap is None:
        return scheme_host
    return f"{parts.scheme}://{swap}:{parts.port}" if parts.port else f"{parts.scheme}://{swap}"


# -- resolve --------------------------------------------------------------------------------
@route("GET", rf"/{PREFIX}{ID}/resolve/(?P<rev>[^/]+)/(?P<path>.+)")
def resolve(c: Ctx) -> Response:
    ref = _ref(c)
    row = c.svc.readable(c.who, ref)
    path = c.params["path"]
    if path not in UNGATED:
        c.svc.ungated(c.who, row)
    sha = c.svc.resolve(row, c.params["rev"])
    repo = c.svc.git(row)
    entry = repo.entry(sha, path)
    if entry is None or entry.kind != "file":
        raise ApiError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
    _count_download(c, row.rowid, ref.repo_type, path)
    data = repo.read_blob(entry.oid) if entry.size <= 1024 else None
    pointer = parse_lfs_pointer(data) if data is not None else None
    if pointer:
        oid, size = pointer
        expires = str(int(time.time()) + URL_TTL)
        sig = c.svc.sign("cdn", oid, expires)
        location = (
            f"{foreign_origin(c.req.scheme_host)}/lfs-cdn/{oid}"
            f"?expires={expires}&sig={sig}&commit={sha}"
        )
        return Response(
            302,
            {
                "Location": location,
                "X-Repo-Commit": sha,
                "X-Linked-Etag": f'"{oid}"',
                "X-Linked-Size": str(size),
                "ETag": f'"{oid}"',
                "Content-Length": "0",
                **cas.download_headers(c, ref, oid, sha),
            },
        )
    content = data if data is not None else repo.read_blob(entry.oid)
    headers = {
        "ETag": f'"{entry.oid}"',
        "X-Repo-Commit": sha,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'inline; filename="{Path(path).name}"',
    }
    return ranged(c.req, headers, len(content), lambda a, b: iter([content[a:b]]))


def _count_download(c: Ctx, rowid: int, repo_type: str, path: str) -> None:
    """One download per GET of the repo's query file (config.json; a dataset's README.md).

    HEAD requests are not counted, so a download (HEAD then GET) counts once.
    """
    query_file = "config.json" if repo_type == "model" else "README.md"
    if path == query_file and c.req.method == "GET":
        try:
            c.svc.db.bump_downloads(rowid)
        except sqlite3.Error as exc:  # a full disk must not fail a download
            log.warning("Download not counted: %s", exc)


@route("GET", r"/lfs-cdn/(?P<oid>[0-9a-f]{64})")
def cdn(c: Ctx) -> Response:
    oid, expires = c.params["oid"], c.req.arg("expires") or "0"
    if (
        not expires.isdigit()
        or int(expires) < time.time()
        or c.req.arg("sig") != c.svc.sign("cdn", oid, expires)
    ):
        raise ApiError(403, "This download link is invalid or has expired")
    size = c.svc.lfs.size(oid)
    if size is None:
        raise ApiError(404, "Object not found", "EntryNotFound")
    path = c.svc.lfs.path(oid)
    headers = {
        "ETag": f'"{oid}"',
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }
    if c.req.arg("commit"):
        headers["X-Repo-Commit"] = c.req.arg("commit") or ""
    return ranged(c.req, headers, size, lambda a, b: file_chunks(path, a, b))


# -- LFS batch API --------------------------------------------------------------------------
@route("POST", rf"/{PREFIX}{ID}\.git/info/lfs/objects/batch")
def lfs_batch(c: Ctx) -> Response:
    body = c.req.json_object()
    operation = body.get("operation")
    objects = body.get("objects")
    if operation not in ("upload", "download") or not isinstance(objects, list):
        raise bad_request("A batch needs 'operation' (upload|download) and 'objects'")
    ref = _ref(c)
    row = _uploader(c, ref) if operation == "upload" else _git_readable(c, ref)
    if operation == "download":
        c.svc.ungated(c.who, row)
    base = c.repo_url(ref)
    answers = [_batch_object(c, row.rowid, ref, base, operation, o) for o in objects]
    return Response.json(
        {"transfer": "basic", "objects": answers, "hash_algo": "sha256"},
        headers={"Content-Type": LFS_JSON},
    )


def _uploader(c: Ctx, ref: RepoRef) -> Any:
    """Who may upload objects: writers, and anyone signed in who can read the repo (for a
    pull request; the commit that would use the objects is checked on its own)."""
    try:
        return c.svc.writable(c.who, ref)
    except ApiError as exc:
        if exc.status != 403 or c.who is None or not c.who.can_write:
            raise
        return c.svc.readable(c.who, ref)


def _batch_object(
    c: Ctx, rowid: int, ref: RepoRef, base: str, operation: str, obj: Any
) -> dict[str, Any]:
    oid = obj.get("oid") if isinstance(obj, dict) else None
    size = obj.get("size") if isinstance(obj, dict) else None
    if not valid_oid(oid) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return {
            "oid": str(oid)[:100],
            "size": size if isinstance(size, int) and not isinstance(size, bool) else 0,
            "error": {"code": 422, "message": "oid must be a sha256 and size an integer"},
        }
    largest = c.svc.limits.max_lfs_object
    if size > largest and operation == "upload":
        return {
            "oid": oid,
            "size": size,
            "error": {
                "code": 422,
                "message": f"Object of {size:,} bytes is larger than this Hub's maximum "
                f"of {largest:,} bytes (`hubtool hub serve --max-lfs-object`)",
            },
        }
    expires = str(int(time.time()) + URL_TTL)
    linked = c.svc.db.linked_lfs(rowid, [oid]).get(oid)
    if operation == "download":
        if linked is None or not c.svc.lfs.has(oid):
            return {"oid": oid, "size": size, "error": {"code": 404, "message": "Not found"}}
        sig = c.svc.sign("cdn", oid, expires)
        href = f"{foreign_origin(c.req.scheme_host)}/lfs-cdn/{oid}?expires={expires}&sig={sig}"
        return {
            "oid": oid,
            "size": linked,
            "authenticated": True,
            "actions": {"download": {"href": href, "expires_in": URL_TTL}},
        }
    if linked == size and c.svc.lfs.has(oid, size):
        return {"oid": oid, "size": size}
    repo_key = f"{ref.repo_type}/{ref.repo_id}"
    sig = c.svc.sign("upload", repo_key, oid, str(size), expires)
    upload = (
        f"{c.req.scheme_host}/lfs-upload/{URL_PREFIX[ref.repo_type]}{ref.repo_id}/{oid}"
        f"?size={size}&expires={expires}&sig={sig}"
    )
    prefix = URL_PREFIX[ref.repo_type]
    verify = (  # signed: git-lfs sends no credentials with it
        f"{c.req.scheme_host}/{prefix}{ref.repo_id}.git/info/lfs/objects/verify"
        f"?expires={expires}&sig={c.svc.sign('verify', repo_key, expires)}"
    )
    return {
        "oid": oid,
        "size": size,
        "authenticated": True,
        "actions": {
            "upload": {"href": upload, "expires_in": URL_TTL},
            "verify": {"href": verify, "expires_in": URL_TTL},
        },
    }


@route("PUT", rf"/lfs-upload/{PREFIX}{ID}/(?P<oid>[0-9a-f]{{64}})")
def lfs_upload(c: Ctx) -> Response:
    ref = _ref(c)
    oid, size, expires = c.params["oid"], c.req.arg("size") or "", c.req.arg("expires") or "0"
    key = f"{ref.repo_type}/{ref.repo_id}"
    if (
        not (size.isdigit() and expires.isdigit())
        or int(expires) < time.time()
        or (c.req.arg("sig") != c.svc.sign("upload", key, oid, size, expires))
    ):
        raise ApiError(403, "This upload link is invalid or has expired")
    row = c.svc.db.get_repo(ref.repo_type, ref.repo_id)
    if row is None:
        raise repo_not_found(False)
    if int(size) > c.svc.limits.max_lfs_object:
        raise ApiError(413, f"Objects are at most {c.svc.limits.max_lfs_object:,} bytes here")
    if c.req.content_length is not None and c.req.content_length != int(size):
        raise bad_request(f"Expected {size} bytes, got a body of {c.req.content_length}")
    if not c.svc.lfs.has(oid, int(size)):
        try:
            c.svc.lfs.put(oid, int(size), c.req.body_stream)
        except LfsMismatch as exc:
            raise bad_request(f"Upload rejected: {exc}") from None
    else:
        _drain(c.req)
    c.svc.db.link_lfs(row.rowid, oid, int(size))
    return Response(200)


def _drain(req: Request) -> None:
    while req.body_stream.read(1 << 20):
        pass


@route("POST", rf"/{PREFIX}{ID}\.git/info/lfs/objects/verify")
def lfs_verify(c: Ctx) -> Response:
    ref, expires = _ref(c), c.req.arg("expires") or ""
    signed = expires.isdigit() and int(expires) >= time.time()
    signed = signed and c.req.arg("sig") == c.svc.sign(
        "verify", f"{ref.repo_type}/{ref.repo_id}", expires
    )
    row = c.svc.db.get_repo(ref.repo_type, ref.repo_id) if signed else c.svc.writable(c.who, ref)
    if row is None:
        raise repo_not_found(c.who is None)
    body = c.req.json_object()
    oid, size = body.get("oid"), body.get("size")
    if not valid_oid(oid) or c.svc.db.linked_lfs(row.rowid, [oid]).get(oid) != size:
        raise ApiError(404, f"Object {oid} of size {size} was not uploaded", "EntryNotFound")
    return Response.json({"success": True})


# -- git smart HTTP (read-only) -------------------------------------------------------------
def _git_readable(c: Ctx, ref: RepoRef):
    try:
        return c.svc.readable(c.who, ref)
    except ApiError as err:
        if err.status == 401:  # ask git for credentials (the token, as the password)
            err.headers["WWW-Authenticate"] = 'Basic realm="hubtool"'
        raise


@route("GET", rf"/{PREFIX}{ID}/info/refs")
def git_info_refs(c: Ctx) -> Response:
    service = c.req.arg("service")
    if service == "git-receive-pack":
        return _receive(c, "info/refs")
    if service != "git-upload-pack":
        raise bad_request("Only smart HTTP (git-upload-pack, git-receive-pack) is supported")
    return _http_backend(c, "info/refs")


@route("POST", rf"/{PREFIX}{ID}/git-upload-pack")
def git_upload_pack(c: Ctx) -> Response:
    return _http_backend(c, "git-upload-pack")


@route("POST", rf"/{PREFIX}{ID}/git-receive-pack")
def git_receive_pack(c: Ctx) -> Response:
    return _receive(c, "git-receive-pack")


def _receive(c: Ctx, action: str) -> Response:
    """A push, by the token's owner (the password of HTTP Basic auth): writers update any
    branch or tag, others only their own pull requests (``hubtool.hub.prereceive``)."""
    ref = RepoRef(_ref(c).repo_type, c.params["id"].removesuffix(".git"))
    if c.who is None:
        raise ApiError(401, "Authenticate with your token as the password", headers=BASIC_CHALLENGE)
    row = _git_readable(c, ref)
    writer = c.who.can_write and (row.namespace or "") in c.who.namespaces
    if not c.who.can_write:
        raise ApiError(403, "This token is read-only; push with a write token")
    env = gitpush.push_env(c.svc, row, c.who, writer)
    before = gitpush.refs_of(c.svc, row) if c.req.method == "POST" else {}
    resp = _http_backend(c, action, env)
    if c.req.method == "POST":
        gitpush.after_push(c.svc, row, before, c.who)
    return resp


BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="hubtool"'}


def _http_backend(c: Ctx, action: str, push: dict[str, str] | None = None) -> Response:
    """``git http-backend`` for a clone or fetch, or (``push``: its environment, from
    ``gitpush.push_env``) for a push."""
    repo_id = c.params["id"].removesuffix(".git")
    ref = RepoRef(_ref(c).repo_type, repo_id)
    row = _git_readable(c, ref)
    if push is None:  # a clone or fetch: a gated repo's files are its granted users'
        c.svc.ungated(c.who, row)
    repo_dir = c.svc.git(row).path
    env = {
        **(push or {}),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(repo_dir.parent),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{repo_dir.name}/{action}",
        "REQUEST_METHOD": c.req.method,
        "QUERY_STRING": f"service={c.req.arg('service')}" if c.req.arg("service") else "",
        "CONTENT_TYPE": c.req.headers.get("content-type", ""),
        "REMOTE_ADDR": "127.0.0.1",
    }
    for header, var in (
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ):
        if header in c.req.headers:
            env[var] = c.req.headers[header]
    body = c.req.body(limit=c.svc.limits.max_commit_body) if c.req.method == "POST" else b""
    env["CONTENT_LENGTH"] = str(len(body))
    with tempfile.TemporaryFile() as out:
        proc = subprocess.run(
            ["git", "http-backend"],
            input=body,
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
        out.seek(0)
        raw = out.read()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if proc.returncode != 0 and not head:
        raise ApiError(400, f"git http-backend failed: {proc.stderr.decode(errors='replace')}")
    status, headers = 200, {}
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "status":
            code = value.strip().split()[:1]
            status = int(code[0]) if code and code[0].isdigit() else 400
        elif name:
            headers[name.strip()] = value.strip()
    if status >= 500:  # git refused what the client sent: a 4xx, so it is not retried
        log.warning("git http-backend answered %s: %s", status, proc.stderr[-500:])
        raise bad_request(f"git could not serve this request: {payload[:200]!r}")
    return Response(status, headers, payload)
