"""Gated repos' access requests (``/api/{type}s/{id}/user-access-request/…``): the owners
list them by status, grant access to a user, and accept, reject or reset a request. Who is
granted reads the repo's files (``HubService.ungated``); everyone else gets GatedRepo.
And likes: a signed-in user likes or unlikes a repo, lists what a user likes and who likes
a repo (the counts on the pages and in search come from them)."""

from __future__ import annotations

from typing import Any

from hubtool.hub.protocol import ApiError, Response, bad_request
from hubtool.hub.router import ID, Ctx, RouteTable, T

route = RouteTable()
BASE = rf"/api/{T}/{ID}/user-access-request"
STATUSES = ("pending", "accepted", "rejected")


def _owned_gated(c: Ctx) -> Any:
    row = c.svc.writable(c.who, c.ref)
    if row.gated == "false":
        raise bad_request("This repo is not gated: every reader has its files already")
    return row


@route("GET", rf"{BASE}/(?P<status>pending|accepted|rejected)")
def list_requests(c: Ctx) -> Response:
    row = _owned_gated(c)
    items = []
    for r in c.svc.db.access_requests(row.rowid, c.params["status"]):
        user = c.svc.db.get_user(r["user"])
        items.append(
            {
                "user": {
                    "user": r["user"],
                    "fullname": user["fullname"] if user else r["user"],
                    "email": user["email"] if user else None,
                },
                "requestId": r["request_id"],
                "status": r["status"],
                "timestamp": r["timestamp"],
            }
        )
    return Response.json(items)


@route("POST", rf"{BASE}/grant")
def grant(c: Ctx) -> Response:
    row = _owned_gated(c)
    user = _user(c, c.req.json_object().get("user"))
    if c.svc.db.access_status(row.rowid, user) == "accepted":
        raise ApiError(409, f"{user} has access to this repo already")
    c.svc.db.set_access(row.rowid, user, "accepted")
    return Response.json({"success": True})


@route("POST", rf"{BASE}/handle")
def handle(c: Ctx) -> Response:
    row = _owned_gated(c)
    body = c.req.json_object()
    status = body.get("status")
    if status not in STATUSES:
        raise bad_request(f"'status' must be one of {', '.join(STATUSES)}")
    if body.get("requestId") is not None:
        user = c.svc.db.access_user(row.rowid, str(body["requestId"]))
    else:
        user = _user(c, body.get("user"))
    current = c.svc.db.access_status(row.rowid, user) if user is not None else None
    if user is None or current is None:
        raise ApiError(404, "No access request from this user", "EntryNotFound")
    if current == status:
        raise ApiError(400, f"The access request of {user} is {status} already")
    reason = body.get("rejectionReason") if status == "rejected" else None
    c.svc.db.set_access(row.rowid, user, str(status), str(reason) if reason else None)
    return Response.json({"success": True})


def _user(c: Ctx, name: Any) -> str:
    if not isinstance(name, str) or c.svc.db.get_user(name) is None:
        raise ApiError(404, f"No user {str(name)[:80]!r} on this Hub", "EntryNotFound")
    return name


# -- likes ------------------------------------------------------------------------------------
@route("POST", rf"/api/{T}/{ID}/like")
def like(c: Ctx) -> Response:
    return _like(c, True)


@route("DELETE", rf"/api/{T}/{ID}/like")
def unlike(c: Ctx) -> Response:
    return _like(c, False)


def _like(c: Ctx, liked: bool) -> Response:
    row = c.svc.readable(c.who, c.ref)
    if c.who is None:
        raise ApiError(401, "You must be authenticated to like a repo")
    c.svc.db.set_like(row.rowid, c.who.user, liked)
    return Response.json({"success": True})


@route("GET", r"/api/users/(?P<user>[^/]+)/likes")
def user_likes(c: Ctx) -> Response:
    from urllib.parse import unquote

    name = unquote(c.params["user"])
    if c.svc.db.get_user(name) is None:
        raise ApiError(404, f"User {name[:80]!r} not found", "EntryNotFound")
    seen = set(c.who.namespaces) if c.who else set()
    return Response.json(
        [
            {"createdAt": r["created_at"], "repo": {"name": r["repo_id"], "type": r["repo_type"]}}
            for r in c.svc.db.likes_of(name)
            if not r["private"] or r["namespace"] in seen
        ]
    )


@route("GET", rf"/api/{T}/{ID}/likers")
def likers(c: Ctx) -> Response:
    row = c.svc.readable(c.who, c.ref)
    return Response.json(
        [
            {"user": r["name"], "fullname": r["fullname"], "avatarUrl": ""}
            for r in c.svc.db.likers_of(row.rowid)
        ]
    )


# -- a namespace's repos and their storage ----------------------------------------------------
@route("GET", r"/api/settings/repositories")
def my_repositories(c: Ctx) -> Response:
    if c.who is None:
        raise ApiError(401, "You must be authenticated to list your repositories")
    return _repositories(c, c.who.user)


@route("GET", r"/api/organizations/(?P<org>[^/]+)/settings/repositories")
def org_repositories(c: Ctx) -> Response:
    org = c.params["org"]
    c.svc.require_write(c.who, org)  # an organization's members see its storage
    return _repositories(c, org)


def _repositories(c: Ctx, namespace: str) -> Response:
    """Each repo of the namespace: visibility, last change and bytes stored (git + LFS)."""
    from hubtool.hub.storage import tree_size

    rows = []
    for row in c.svc.db.repos_of(namespace):
        lfs = sum(size for _, size, _ in c.svc.db.lfs_links_of(row.rowid))
        stored = lfs + tree_size(c.svc.git_path(row.repo_type, row.repo_id))
        rows.append(
            {
                "id": row.repo_id,
                "type": row.repo_type,
                "updatedAt": row.last_modified,
                "visibility": "private" if row.private else "public",
                "storage": stored,
                "storagePercent": 0,  # no quota on a local Hub
            }
        )
    return Response.json(rows)
