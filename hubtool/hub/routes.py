"""The Hub API's routes (spec §2). Each handler reads a request, calls the service, answers JSON.

Routing is on the raw path (spec §1): ``refs%2Fpr%2F1`` and ``a%2Fb`` stay single segments
and are unquoted after matching.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from hubtool.core.cardrules import validate_card
from hubtool.core.output import parse_count
from hubtool.hub import cas, discussions, views
from hubtool.hub.commits import apply_commit, parse_commit, preupload
from hubtool.hub.db import ListQuery
from hubtool.hub.gitstore import RefConflict, ref_name_problem
from hubtool.hub.protocol import ApiError, BodyError, Request, Response, bad_request
from hubtool.hub.router import ID, MAX_CURSOR, PAGE, Ctx, RouteTable, T
from hubtool.hub.service import REPO_TYPES, URL_PREFIX, RepoRef

route = RouteTable()


# -- identity -------------------------------------------------------------------------------
@route("GET", "/api/whoami-v2")
def whoami(c: Ctx) -> Response:
    who = c.who
    if who is None:
        raise ApiError(401, "Invalid username or password.")
    user = c.svc.db.get_user(who.user)
    if user is None:
        raise ApiError(401, "Invalid credentials in Authorization header")
    orgs = [
        {
            "type": "org",
            "name": o,
            "fullname": _fullname(c, o),
            "roleInOrg": "write",
        }
        for o in who.orgs
    ]
    return Response.json(
        {
            "type": "user",
            "id": who.user,
            "name": who.user,
            "fullname": user["fullname"],
            "email": user["email"],
            "emailVerified": bool(user["email"]),
            "canPay": False,
            "isPro": False,
            "periodEnd": None,
            "avatarUrl": "",
            "orgs": orgs,
            "auth": {
                "type": "access_token",
                "accessToken": {
                    "displayName": who.token_name,
                    "role": who.role,
                    "createdAt": who.token_created,
                },
            },
        }
    )


def _fullname(c: Ctx, name: str) -> str:
    row = c.svc.db.get_user(name)
    return str(row["fullname"]) if row is not None else name


@route("GET", "/api/agent-harnesses")
def agent_harnesses(c: Ctx) -> Response:
    return Response.json({"standardEnvVars": [], "harnesses": {}})


@route("GET", f"/api/{T}/{ID}/auth-check(?P<write>/write)?")
def auth_check(c: Ctx) -> Response:
    if c.params.get("write"):
        c.svc.writable(c.who, c.ref)
    else:
        c.svc.ungated(c.who, c.svc.readable(c.who, c.ref))
    return Response.json({"ok": True})


# -- repos ----------------------------------------------------------------------------------
@route("POST", "/api/repos/move")
def move_repo(c: Ctx) -> Response:
    body = c.req.json_object()
    kind, old, new = body.get("type") or "model", body.get("fromRepo"), body.get("toRepo")
    if kind not in REPO_TYPES.values() or not isinstance(old, str) or not isinstance(new, str):
        raise bad_request("A move needs 'fromRepo', 'toRepo' and 'type' (model|dataset|space)")
    c.svc.move_repo(c.who, RepoRef(kind, old), RepoRef(kind, new))
    return Response.json({"success": True})


def _body_ref(body: dict[str, Any]) -> RepoRef:
    name, org = body.get("name"), body.get("organization")
    if not isinstance(name, str) or not name:
        raise bad_request("'name' is required")
    if org is not None and not isinstance(org, str):
        raise bad_request("'organization' must be a string")
    if "/" in name and not org:
        org, name = name.split("/", 1)
    repo_type = body.get("type") or "model"
    if not isinstance(repo_type, str) or repo_type not in URL_PREFIX:
        raise bad_request(f"Invalid repo type {str(repo_type)[:40]!r}")
    return RepoRef(repo_type, f"{org}/{name}" if org else name)


@route("POST", "/api/repos/create")
def create_repo(c: Ctx) -> Response:
    body = c.req.json_object()
    ref = _body_ref(body)
    if ref.namespace is None and c.who is not None:
        ref = RepoRef(ref.repo_type, f"{c.who.user}/{ref.repo_id}")
    private = body.get("visibility") == "private" or body.get("private") is True
    if body.get("private") is None and body.get("visibility") is None and ref.namespace:
        owner = c.svc.db.get_user(ref.namespace)  # an Enterprise org may default to private
        private = bool(owner and owner["private_by_default"])
    try:
        row = c.svc.create_repo(c.who, ref, private)
    except ApiError as err:
        if err.status == 409 and err.body is not None:
            err.body["url"] = c.repo_url(ref)
        raise
    return Response.json({"url": c.repo_url(ref), "name": ref.repo_id, "id": row.object_id})


@route("DELETE", "/api/repos/delete")
def delete_repo(c: Ctx) -> Response:
    ref = _body_ref(c.req.json_object())
    c.svc.delete_repo(c.who, ref)
    return Response.text("OK")


@route("PUT", f"/api/{T}/{ID}/settings")
def repo_settings(c: Ctx) -> Response:
    body = c.req.json_object()
    private = body.get("private")
    if "visibility" in body:
        private = body["visibility"] == "private"
    gated = body.get("gated")
    if gated is not None and gated not in (False, "auto", "manual"):
        raise bad_request("'gated' must be false, 'auto' or 'manual'")
    row = c.svc.update_settings(
        c.who,
        c.ref,
        private if isinstance(private, bool) else None,
        None if gated is None else str(gated).lower(),
    )
    return Response.json({"private": row.private, "gated": views.all_fields(row)["gated"]})


@route("GET", f"/api/{T}/{ID}(?:/revision/(?P<rev>[^/]+))?")
def repo_info(c: Ctx) -> Response:
    row = c.svc.readable(c.who, c.ref)
    rev = c.params.get("rev")
    fields: dict[str, Any]
    if row.metadata_only:
        if rev and rev not in ("main", row.sha):
            raise ApiError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        fields = views.all_fields(row)
    else:
        repo = c.svc.git(row)
        sha = c.svc.resolve(row, rev or "main")
        meta = None
        if sha != row.sha:
            derived = c.svc.derive(row, sha)
            meta = {
                **derived["meta"],
                "pipeline_tag": derived["pipeline_tag"],
                "library_name": derived["library_name"],
            }
        fields = views.all_fields(row, sha, meta)
        if c.req.flag("blobs"):
            fields["siblings"], fields["usedStorage"] = views.siblings_with_blobs(repo, sha)
    expand = c.req.args("expand")
    if expand:
        return Response.json(views.pick(fields, ["_id", "id", *expand]))
    keys = views.INFO_KEYS if row.repo_type == "model" else views.DATASET_INFO_KEYS
    return Response.json(views.pick(fields, keys))


def _count(value: str) -> int:
    count = parse_count(value)
    if count is None or count > 2**62:
        raise bad_request(f"Invalid parameter count {value[:40]!r}")
    return count


def _list_query(c: Ctx, repo_type: str, offset: int, limit: int) -> ListQuery:
    req = c.req
    min_p = max_p = None
    for part in (req.arg("num_parameters") or "").split(","):
        key, _, value = part.partition(":")
        if key == "min":
            min_p = _count(value)
        elif key == "max":
            max_p = _count(value)
    gated = req.arg("gated")
    filters = tuple(f for f in req.args("filter") if f)
    if len(filters) > c.svc.limits.max_filters:
        raise bad_request(f"Too many 'filter' values (at most {c.svc.limits.max_filters})")
    return ListQuery(
        repo_type=repo_type,
        viewer_namespaces=c.who.namespaces if c.who else (),
        search=req.arg("search") or None,
        author=req.arg("author") or None,
        filters=filters,
        pipeline_tag=req.arg("pipeline_tag"),
        gated=None if gated is None else req.flag("gated"),
        min_params=min_p,
        max_params=max_p,
        sort=req.arg("sort") or "downloads",
        offset=offset,
        limit=limit,
    )


@route("GET", f"/api/{T}")
def list_repos(c: Ctx) -> Response:
    req = c.req
    try:
        limit = min(int(req.arg("limit") or PAGE), PAGE)
        cursor = req.arg("cursor")
        offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Invalid 'limit' or 'cursor'") from None
    if limit < 0 or not 0 <= offset <= MAX_CURSOR:
        raise bad_request("'limit' and 'cursor' must not be negative or absurd")
    repo_type = REPO_TYPES[c.params["t"]]
    rows = c.svc.db.list_repos(_list_query(c, repo_type, offset, limit + 1))
    headers = {}
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
        headers["Link"] = c.next_link(nxt)
    full, expand = req.flag("full"), req.args("expand")
    body = [views.list_row(r, full, req.flag("cardData"), req.flag("config"), expand) for r in rows]
    return Response.json(body, headers=headers)


# -- files and history ----------------------------------------------------------------------
def _cursor(c: Ctx) -> int:
    try:
        cursor = int(c.req.arg("cursor") or 0)
    except ValueError:
        raise bad_request("Invalid 'cursor'") from None
    if not 0 <= cursor <= MAX_CURSOR:
        raise bad_request("Invalid 'cursor'")
    return cursor


def paginated(c: Ctx, items: list[Any], page: int) -> Response:
    cursor = _cursor(c)
    chunk = items[cursor : cursor + page]
    headers = {}
    if cursor + page < len(items):
        headers["Link"] = c.next_link(str(cursor + page))
    return Response.json(chunk, headers=headers)


@route("GET", f"/api/{T}/{ID}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?")
def list_tree(c: Ctx) -> Response:
    row = c.svc.readable(c.who, c.ref)
    sha = c.svc.resolve(row, c.params["rev"])
    repo = c.svc.git(row)
    path = c.params.get("path", "").strip("/")
    if path:
        entry = repo.entry(sha, path)
        if entry is None or entry.kind != "directory":
            raise ApiError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
    listed = repo.list_tree(sha, path, c.req.flag("recursive"))
    entries = views.tree_entries(repo, listed, cas.store(c.svc).file_of_sha256)
    expand = c.req.flag("expand")
    response = paginated(c, entries, 50 if expand else PAGE)
    if expand:  # only for the rows of this page: one history walk per entry
        page = json.loads(response.body)
        for e in page:
            views.expand_entry(repo, sha, e)
        response = Response.json(page, headers=response.headers)
    return response


@route("POST", f"/api/{T}/{ID}/paths-info/(?P<rev>[^/]+)")
def paths_info(c: Ctx) -> Response:
    row = c.svc.readable(c.who, c.ref)
    sha = c.svc.resolve(row, c.params["rev"])
    if c.req.headers.get("content-type", "").startswith("application/json"):
        body = c.req.json_object()
        paths, expand = body.get("paths") or [], body.get("expand") in (True, "true", "1")
    else:
        form = Request.parse_query(c.req.body().decode(errors="replace"))
        paths = form.get("paths", [])
        expand = (form.get("expand") or [""])[-1].lower() in ("true", "1")
    if not isinstance(paths, list) or len(paths) > MAX_PATHS:
        raise bad_request(f"'paths' must be a list of at most {MAX_PATHS} paths")
    repo = c.svc.git(row)
    entries = [e for e in (repo.entry(sha, str(p).strip("/")) for p in paths) if e]
    rows = views.tree_entries(repo, entries, cas.store(c.svc).file_of_sha256)
    for entry in rows if expand else []:  # the last commit of each path: a history walk each
        views.expand_entry(repo, sha, entry)
    return Response.json(rows)


MAX_PATHS = 1000


@route("GET", f"/api/{T}/{ID}/refs")
def list_refs(c: Ctx) -> Response:
    row = c.svc.readable(c.who, c.ref)
    include_prs = c.req.flag("include_prs")
    return Response.json(views.refs_view(c.svc.git(row).refs(), include_prs))


@route("GET", f"/api/{T}/{ID}/commits/(?P<rev>[^/]+)")
def list_commits(c: Ctx) -> Response:
    row = c.svc.readable(c.who, c.ref)
    sha = c.svc.resolve(row, c.params["rev"])
    repo = c.svc.git(row)
    cursor = _cursor(c)
    page = 50
    commits = repo.log(sha, skip=cursor, limit=page + 1)
    headers = {}
    if len(commits) > page:
        commits = commits[:page]
        headers["Link"] = c.next_link(str(cursor + page))
        headers["X-Total-Count"] = str(repo.count_commits(sha))
    formatted = "formatted" in c.req.args("expand")
    return Response.json([views.commit_row(x, formatted) for x in commits], headers=headers)


# -- writing --------------------------------------------------------------------------------
@route("POST", "/api/validate-yaml")
def validate_yaml(c: Ctx) -> Response:
    try:
        body = c.req.json_object()
    except BodyError:
        raise  # a body that timed out or broke: answered as such, the connection closed
    except ApiError as err:
        errors: list[str] = [err.message]
        warnings: list[dict[str, Any]] = []
    else:
        content = body.get("content")
        if not isinstance(content, str):
            errors, warnings = ["'content' must be a string"], []
        else:
            errors, warnings = validate_card(content, str(body.get("repoType") or "model"))
    status = 400 if errors else 200
    if "text/plain" in c.req.headers.get("accept", ""):
        text = "\n".join(f"- Error: {e}" for e in errors) or "OK"
        return Response.text(text, status)
    return Response.json({"errors": [{"message": e} for e in errors], "warnings": warnings}, status)


@route("POST", f"/api/{T}/{ID}/preupload/(?P<rev>[^/]+)")
def preupload_route(c: Ctx) -> Response:
    row = proposer_access(c, c.params["rev"])
    body = c.req.json_object()
    return Response.json(
        preupload(c.svc, row, c.params["rev"], body.get("files"), body.get("gitIgnore"))
    )


@route("POST", f"/api/{T}/{ID}/commit/(?P<rev>[^/]+)")
def commit(c: Ctx) -> Response:
    row = proposer_access(c, c.params["rev"])
    assert c.who is not None
    limits = c.svc.limits
    req = parse_commit(c.req.lines(limits.max_commit_line, limits.max_commit_body))
    create_pr = c.req.flag("create_pr")
    oid, pr = apply_commit(c.svc, c.who, row, c.params["rev"], req, create_pr)
    url = c.repo_url(c.ref)
    body: dict[str, Any] = {
        "success": True,
        "commitOid": oid,
        "commitUrl": f"{url}/commit/{oid}",
        "hookOutput": "",
    }
    if pr is not None:
        body["pullRequestUrl"] = f"{url}/discussions/{pr}"
    return Response.json(body)


def proposer_access(c: Ctx, rev: str) -> Any:
    """Write access, or for a pull request read access: anyone signed in who can read the
    repo may open one (``create_pr``) and commit to the one they opened (``refs/pr/N``)."""
    proposing = c.req.flag("create_pr")
    if not proposing and not rev.startswith("refs/pr/"):
        return c.svc.writable(c.who, c.ref)
    row = c.svc.readable(c.who, c.ref)
    if c.who is None:
        raise ApiError(401, "You must be authenticated to open or update a pull request")
    if not proposing:
        num = rev.removeprefix("refs/pr/")
        pr = discussions.store(c.svc).get(row.rowid, int(num)) if num.isdigit() else None
        if pr is None or pr["author"] != c.who.user:
            c.svc.require_write(c.who, row.namespace or "")
    return row


def _new_ref_name(name: str) -> str:
    """A new branch or tag name: git's check-ref-format rules, ASCII, not under refs/."""
    problem = ref_name_problem(name)
    if problem is None and not re.fullmatch(r"[A-Za-z0-9._/\-]{1,200}", name):
        problem = "use letters, digits, '.', '_', '-' and '/' (at most 200)"
    if problem is None and name.startswith("refs/"):
        problem = "it starts with 'refs/'"
    if problem is not None:
        raise bad_request(f"Invalid reference name {name[:200]!r}: {problem}")
    return name


def _create_ref(repo: Any, ref: str, target: str, what: str) -> None:
    try:
        repo.update_ref(ref, target, "0" * 40)
    except RefConflict:
        raise ApiError(409, f"{what} already exists") from None


@route("POST", f"/api/{T}/{ID}/tag/(?P<rev>[^/]+)")
def create_tag(c: Ctx) -> Response:
    row = c.svc.writable(c.who, c.ref)
    body = c.req.json_object()
    sha = c.svc.resolve(row, c.params["rev"])  # the revision first, as the Hub
    tag = _new_ref_name(str(body.get("tag") or ""))
    repo = c.svc.git(row)
    if repo.resolve(f"refs/tags/{tag}"):
        raise ApiError(409, f"Tag {tag} already exists")
    target = sha
    if body.get("message"):
        assert c.who is not None
        if "\0" in str(body["message"]):
            raise bad_request("The tag message must not contain a NUL character")
        from hubtool.hub.service import now_iso

        target = repo.create_annotated_tag(tag, sha, str(body["message"]), c.who.user, now_iso())
    _create_ref(repo, f"refs/tags/{tag}", target, f"Tag {tag}")
    return Response.json({"success": True})


@route("DELETE", f"/api/{T}/{ID}/tag/(?P<tag>[^/]+)")
def delete_tag(c: Ctx) -> Response:
    row = c.svc.writable(c.who, c.ref)
    repo = c.svc.git(row)
    ref = f"refs/tags/{c.params['tag']}"
    if not repo.resolve(ref):
        raise ApiError(404, f"Invalid rev id: {c.params['tag']}", "RevisionNotFound")
    repo.delete_ref(ref)
    return Response.json({"success": True})


@route("POST", f"/api/{T}/{ID}/branch/(?P<branch>[^/]+)")
def create_branch(c: Ctx) -> Response:
    row = c.svc.writable(c.who, c.ref)
    branch = _new_ref_name(c.params["branch"])
    body = c.req.json() or {}
    start = body.get("startingPoint") if isinstance(body, dict) else None
    repo = c.svc.git(row)
    if repo.resolve(f"refs/heads/{branch}"):
        raise ApiError(409, f"Reference refs/heads/{branch} already exists")
    sha = c.svc.resolve(row, str(start or "main"))
    _create_ref(repo, f"refs/heads/{branch}", sha, f"Reference refs/heads/{branch}")
    return Response.json({"success": True})


@route("DELETE", f"/api/{T}/{ID}/branch/(?P<branch>[^/]+)")
def delete_branch(c: Ctx) -> Response:
    row = c.svc.writable(c.who, c.ref)
    branch = c.params["branch"]
    if branch == "main":
        raise ApiError(403, "Cannot delete refs/heads/main: it is the default branch")
    repo = c.svc.git(row)
    if not repo.resolve(f"refs/heads/{branch}"):
        raise ApiError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
    repo.delete_ref(f"refs/heads/{branch}")
    return Response.json({"success": True})
