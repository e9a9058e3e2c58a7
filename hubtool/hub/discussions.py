"""Discussions and pull requests (the Hub's ``/api/{type}s/{id}/discussions`` API): list,
open, read with their events, comment, rename, close and reopen, edit and hide comments, and
merge a pull request into its target branch with a real git merge (refused on conflicts).

A pull request is a discussion with a ``refs/pr/N`` branch: ``create_commit(create_pr=True)``
opens one with the commit on it (``open_pull_request``); ``create_discussion(pull_request=
True)`` opens a draft whose branch starts at the target's head. Commits to ``refs/pr/N`` are
events of the pull request. Anyone who can read a repo and has a token may open, comment on
and close their own discussions; renaming, closing others' and merging take write access.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from hubtool.hub.discussion_store import PAGE, Discussions
from hubtool.hub.gitstore import RefConflict
from hubtool.hub.protocol import ApiError, Response, bad_request
from hubtool.hub.router import ID, Ctx, RouteTable, T
from hubtool.hub.service import HubService, now_iso

route = RouteTable()
MAX_TITLE = 200
MAX_COMMENT = 64 * 1024
STATUSES = ("open", "closed")


def store(svc: HubService) -> Discussions:
    return svc.discussions


def comment_data(
    text: str, author: str, history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    from hubtool.hub.pages import render_markdown

    latest = {
        "raw": text,
        "html": render_markdown(text),
        "updatedAt": now_iso(),
        "author": {"name": author},
    }
    past = history or []
    return {
        "edited": bool(past),
        "hidden": False,
        "numEdits": len(past),
        "editors": sorted({h["author"]["name"] for h in past} | {author}),
        "latest": latest,
        "history": [latest, *past],
    }


# -- opened from a commit (``create_commit(create_pr=True)``) ----------------------------------
def open_pull_request(svc: HubService, rowid: int, title: str, author: str, target: str) -> int:
    return store(svc).open(rowid, title, author, True, "open", target)


def commit_event(svc: HubService, rowid: int, ref: str, summary: str, oid: str, who: str) -> None:
    """A commit that landed on ``refs/pr/N``: an event of that pull request."""
    num = ref.removeprefix("refs/pr/")
    if num.isdigit():
        store(svc).add_event(rowid, int(num), "commit", who, {"subject": summary, "oid": oid})


# -- routes -----------------------------------------------------------------------------------
BASE = rf"/api/{T}/{ID}/discussions"
NUM = r"(?P<num>[0-9]{1,9})"


def _summary(c: Ctx, row: sqlite3.Row) -> dict[str, Any]:
    ref = c.ref
    return {
        "num": row["num"],
        "title": row["title"],
        "status": row["status"],
        "author": {"name": row["author"], "type": "user"},
        "createdAt": row["created_at"],
        "isPullRequest": bool(row["is_pr"]),
        "repo": {"name": ref.repo_id, "type": ref.repo_type},
        "numComments": store(c.svc).comments(row["repo"], row["num"]),
        "pinned": False,
        "topReactions": [],
    }


@route("GET", BASE)
def list_discussions(c: Ctx) -> Response:
    repo = c.svc.readable(c.who, c.ref)
    page = c.req.arg("p") or "0"
    if not page.isdigit() or int(page) > 10**6:
        raise bad_request("p must be a page number")
    rows, total = store(c.svc).page(
        repo.rowid, c.req.arg("type"), c.req.arg("status"), c.req.arg("author"), int(page)
    )
    return Response.json(
        {
            "discussions": [_summary(c, r) for r in rows],
            "count": total,
            "start": int(page) * PAGE,
            "numItemsPerPage": PAGE,
        }
    )


@route("POST", BASE)
def create_discussion(c: Ctx) -> Response:
    repo = c.svc.readable(c.who, c.ref)
    who = _signed_in(c)
    body = c.req.json_object()
    title = _text(body.get("title"), "title", MAX_TITLE)
    description = _text(body.get("description") or title, "description", MAX_COMMENT)
    is_pr = body.get("pullRequest") is True
    ds = store(c.svc)
    target = "refs/heads/main"
    num = ds.open(repo.rowid, title, who, is_pr, "draft" if is_pr else "open", target)
    if is_pr:
        git = c.svc.git(repo)
        head = git.resolve(target)
        if head is not None:
            git.update_ref(f"refs/pr/{num}", head, "0" * 40)
    ds.add_event(repo.rowid, num, "comment", who, comment_data(description, who))
    url = f"{c.repo_url(c.ref)}/discussions/{num}"
    return Response.json({"num": num, "url": url, "pullRequest": is_pr})


@route("GET", rf"{BASE}/{NUM}")
def discussion_details(c: Ctx) -> Response:
    repo = c.svc.readable(c.who, c.ref)
    ds = store(c.svc)
    row = ds.get(repo.rowid, int(c.params["num"]))
    body = {**_summary(c, row), "events": ds.events(repo.rowid, row["num"])}
    if row["is_pr"]:
        git = c.svc.git(repo)
        base, head = git.resolve(row["target"]), git.resolve(f"refs/pr/{row['num']}")
        conflicts = git.merge_conflicts(base, head) if base and head else []
        body["changes"] = {"base": row["target"], "mergeCommitId": row["merge_commit"]}
        body["filesWithConflicts"] = conflicts
        if c.req.flag("diff") and base and head:
            body["diff"] = git.diff(base, head)
    return Response.json(body)


def _discussion(c: Ctx) -> tuple[Any, sqlite3.Row, str]:
    """(repo, discussion, the signed-in user) of a change to a discussion."""
    repo = c.svc.readable(c.who, c.ref)
    who = _signed_in(c)
    return repo, store(c.svc).get(repo.rowid, int(c.params["num"])), who


def _may_moderate(c: Ctx, repo: Any, row: sqlite3.Row, who: str) -> None:
    """The discussion's author, or someone who can write to the repo."""
    if row["author"] != who:
        c.svc.require_write(c.who, repo.namespace or "")


@route("POST", rf"{BASE}/{NUM}/comment")
def comment(c: Ctx) -> Response:
    repo, row, who = _discussion(c)
    text = _text(c.req.json_object().get("comment"), "comment", MAX_COMMENT)
    event = store(c.svc).add_event(repo.rowid, row["num"], "comment", who, comment_data(text, who))
    return Response.json({"newMessage": event})


@route("POST", rf"{BASE}/{NUM}/title")
def rename(c: Ctx) -> Response:
    repo, row, who = _discussion(c)
    _may_moderate(c, repo, row, who)
    title = _text(c.req.json_object().get("title"), "title", MAX_TITLE)
    ds = store(c.svc)
    ds.update(repo.rowid, row["num"], title=title)
    event = ds.add_event(
        repo.rowid, row["num"], "title-change", who, {"from": row["title"], "to": title}
    )
    return Response.json({"newTitle": event})


@route("POST", rf"{BASE}/{NUM}/status")
def change_status(c: Ctx) -> Response:
    repo, row, who = _discussion(c)
    _may_moderate(c, repo, row, who)
    body = c.req.json_object()
    status = body.get("status")
    if status not in STATUSES:
        raise bad_request("status must be 'open' or 'closed'")
    if row["status"] == "merged":
        raise ApiError(400, "This pull request is merged: its status cannot change")
    ds = store(c.svc)
    if body.get("comment"):
        text = _text(body["comment"], "comment", MAX_COMMENT)
        ds.add_event(repo.rowid, row["num"], "comment", who, comment_data(text, who))
    ds.update(repo.rowid, row["num"], status=status)
    event = ds.add_event(repo.rowid, row["num"], "status-change", who, {"status": status})
    return Response.json({"newStatus": event})


@route("POST", rf"{BASE}/{NUM}/merge")
def merge(c: Ctx) -> Response:
    repo, row, who = _discussion(c)
    c.svc.require_write(c.who, repo.namespace or "")
    if not row["is_pr"]:
        raise bad_request("This is a discussion, not a pull request: there is nothing to merge")
    if row["status"] not in ("open", "draft"):
        raise bad_request(f"This pull request is {row['status']}: only an open one can be merged")
    body = c.req.json_object() if c.req.content_length else {}
    git = c.svc.git(repo)
    pr_ref = f"refs/pr/{row['num']}"
    with c.svc.repo_lock(c.ref):
        base, head = git.resolve(row["target"]), git.resolve(pr_ref)
        if base is None or head is None:
            raise ApiError(404, "The pull request's branch or its target no longer exists")
        message = f"Merge pull request #{row['num']}: {row['title']}"
        merged, conflicts = git.merge(base, head, message, who, now_iso())
        if merged is None:
            raise ApiError(
                409, f"This pull request has conflicts with {row['target']}: {', '.join(conflicts)}"
            )
        try:
            git.update_ref(row["target"], merged, base)
        except RefConflict:
            raise ApiError(409, "The target branch moved; merge again") from None
    if row["target"] == "refs/heads/main":
        c.svc.refresh(repo)
    ds = store(c.svc)
    if body.get("comment"):
        text = _text(body["comment"], "comment", MAX_COMMENT)
        ds.add_event(repo.rowid, row["num"], "comment", who, comment_data(text, who))
    ds.update(repo.rowid, row["num"], status="merged", merge_commit=merged)
    ds.add_event(repo.rowid, row["num"], "status-change", who, {"status": "merged"})
    return Response.json({"success": True, "mergeCommitId": merged})


@route("POST", rf"{BASE}/{NUM}/comment/(?P<event>[0-9a-f]{{24}})/edit")
def edit_comment(c: Ctx) -> Response:
    ds, event, _, who = _comment(c)
    if event["author"] != who:
        raise ApiError(403, "Only its author may edit a comment")
    text = _text(c.req.json_object().get("content"), "content", MAX_COMMENT)
    data = json.loads(event["data"])
    if data.get("hidden"):
        raise ApiError(403, "A hidden comment cannot be edited")
    updated = ds.replace(event, comment_data(text, who, data.get("history") or []))
    return Response.json({"updatedComment": updated})


@route("POST", rf"{BASE}/{NUM}/comment/(?P<event>[0-9a-f]{{24}})/hide")
def hide_comment(c: Ctx) -> Response:
    ds, event, repo, who = _comment(c)
    if event["author"] != who:
        c.svc.require_write(c.who, repo.namespace or "")
    data = {**json.loads(event["data"]), "hidden": True}
    data["latest"] = {**data["latest"], "raw": "This comment has been hidden", "html": ""}
    return Response.json({"updatedComment": ds.replace(event, data)})


def _comment(c: Ctx) -> tuple[Discussions, sqlite3.Row, Any, str]:
    """(the store, the comment's event row, the repo, the signed-in user) of a change to a
    comment."""
    repo, row, who = _discussion(c)
    ds = store(c.svc)
    return ds, ds.event(repo.rowid, row["num"], c.params["event"]), repo, who


def _signed_in(c: Ctx) -> str:
    if c.who is None:
        raise ApiError(401, "You must be authenticated to take part in discussions")
    return c.who.user


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"A non-empty {name} is required")
    if len(value) > limit:
        raise bad_request(f"The {name} is longer than {limit:,} characters")
    return value.strip()
