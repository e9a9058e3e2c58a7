"""JSON shapes the Hub answers with (spec §2 and §3), built from index rows and git trees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hubtool.hub.db import RepoRow
from hubtool.hub.gitstore import CommitInfo, GitRepo, TreeEntry, parse_lfs_pointer

LIST_DEFAULT = (
    "_id",
    "id",
    "likes",
    "trendingScore",
    "private",
    "downloads",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
    "modelId",
)
LIST_FULL = ("author", "gated", "lastModified", "sha", "siblings")
DATASET_LIST_DEFAULT = (
    "_id",
    "id",
    "author",
    "disabled",
    "gated",
    "lastModified",
    "likes",
    "trendingScore",
    "private",
    "sha",
    "description",
    "downloads",
    "tags",
    "createdAt",
)
INFO_KEYS = (
    "_id",
    "id",
    "private",
    "pipeline_tag",
    "library_name",
    "tags",
    "downloads",
    "likes",
    "modelId",
    "author",
    "sha",
    "lastModified",
    "gated",
    "disabled",
    "mask_token",
    "widgetData",
    "model-index",
    "config",
    "cardData",
    "transformersInfo",
    "siblings",
    "spaces",
    "createdAt",
    "safetensors",
    "usedStorage",
)
DATASET_INFO_KEYS = (
    "_id",
    "id",
    "author",
    "sha",
    "lastModified",
    "private",
    "gated",
    "disabled",
    "tags",
    "downloads",
    "likes",
    "cardData",
    "siblings",
    "createdAt",
    "description",
    "citation",
    "usedStorage",
)


def all_fields(
    row: RepoRow, sha: str | None = None, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every field this server knows for a repo (callers pick the keys they answer with)."""
    meta = meta if meta is not None else row.meta
    card = meta.get("cardData")
    fields: dict[str, Any] = {
        "_id": row.object_id,
        "id": row.repo_id,
        "modelId": row.repo_id,
        "author": row.namespace,
        "sha": sha or row.sha,
        "private": row.private,
        "gated": False if row.gated == "false" else row.gated,
        "disabled": row.disabled,
        "downloads": row.downloads,
        "likes": row.likes,
        "trendingScore": row.trending,
        "tags": meta.get("tags", []),
        "createdAt": row.created_at,
        "lastModified": row.last_modified,
        "spaces": [],
        "siblings": [{"rfilename": p} for p in meta.get("siblings", [])],
        "description": (card or {}).get("pretty_name") or "",
    }
    for key in (
        "config",
        "cardData",
        "transformersInfo",
        "safetensors",
        "mask_token",
        "widgetData",
        "usedStorage",
    ):
        if key in meta:
            fields[key] = meta[key]
    fields["model-index"] = (card or {}).get("model-index") if isinstance(card, dict) else None
    fields["xetEnabled"] = False
    if row.repo_type == "model":
        fields["pipeline_tag"] = meta.get("pipeline_tag", row.pipeline_tag)
        fields["library_name"] = meta.get("library_name", row.library_name)
    return {k: v for k, v in fields.items() if v is not None or k in ("author", "model-index")}


def pick(fields: dict[str, Any], keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {k: fields[k] for k in keys if k in fields}


def list_row(
    row: RepoRow, full: bool, card_data: bool, config: bool, expand: list[str]
) -> dict[str, Any]:
    fields = all_fields(row)
    if expand:
        return pick(fields, ["_id", "id", *expand])
    if row.repo_type == "model":
        keys = list(LIST_DEFAULT) + (list(LIST_FULL) if full else [])
    else:
        keys = list(DATASET_LIST_DEFAULT) + (["siblings"] if full else [])
    if card_data:
        keys.append("cardData")
    if config:
        keys.append("config")
    return pick(fields, keys)


def siblings_with_blobs(repo: GitRepo, commit: str) -> tuple[list[dict[str, Any]], int]:
    """Siblings with sizes and LFS info, and the repo's used storage."""
    entries = tree_entries(repo, repo.list_tree(commit, "", True))
    siblings, used = [], 0
    for e in entries:
        if e["type"] != "file":
            continue
        sib: dict[str, Any] = {"rfilename": e["path"], "size": e["size"], "blobId": e["oid"]}
        if "lfs" in e:
            sib["lfs"] = {
                "size": e["lfs"]["size"],
                "sha256": e["lfs"]["oid"],
                "pointerSize": e["lfs"]["pointerSize"],
            }
        used += e["size"]
        siblings.append(sib)
    return siblings, used


def tree_entries(
    repo: GitRepo, entries: list[TreeEntry], xet_of: Callable[[str], str | None] | None = None
) -> list[dict[str, Any]]:
    """Tree rows: files carry their git oid, their real size and, for LFS files, ``lfs``
    and (``xet_of``: the Xet file hash of an LFS oid, when stored through Xet) ``xetHash``."""
    small = [e.oid for e in entries if e.kind == "file" and e.size <= 1024]
    blobs = repo.read_blobs(small)
    rows = []
    for e in entries:
        row: dict[str, Any] = {"type": e.kind, "oid": e.oid, "size": e.size, "path": e.path}
        pointer = parse_lfs_pointer(blobs.get(e.oid, b"")) if e.kind == "file" else None
        if pointer:
            row["size"] = pointer[1]
            row["lfs"] = {"oid": pointer[0], "size": pointer[1], "pointerSize": e.size}
            xet_hash = xet_of(pointer[0]) if xet_of else None
            if xet_hash:
                row["xetHash"] = xet_hash
        rows.append(row)
    return rows


def commit_row(c: CommitInfo, formatted: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": c.oid,
        "title": c.title,
        "message": c.message,
        "authors": [{"user": c.author, "avatar": None}],
        "date": c.date,
    }
    if formatted:
        from html import escape

        row["formatted"] = {"title": escape(c.title), "message": escape(c.message)}
    return row


def refs_view(refs: list[tuple[str, str]], include_prs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"branches": [], "converts": [], "tags": []}
    if include_prs:
        out["pullRequests"] = []
    for name, target in refs:
        for prefix, key in (
            ("refs/heads/", "branches"),
            ("refs/tags/", "tags"),
            ("refs/convert/", "converts"),
            ("refs/pr/", "pullRequests"),
        ):
            if name.startswith(prefix) and key in out:
                out[key].append({"name": name[len(prefix) :], "ref": name, "targetCommit": target})
    return out


def expand_entry(repo: GitRepo, commit: str, entry: dict[str, Any]) -> None:
    """Add ``lastCommit`` (the last commit that touched the path) and a security status."""
    last = repo.log(commit, limit=1, path=entry["path"])
    if last:
        entry["lastCommit"] = {"id": last[0].oid, "title": last[0].title, "date": last[0].date}
    if entry["type"] == "file":
        entry["securityFileStatus"] = {
            "status": "unscanned",
            "avScan": {"virusFound": False, "virusNames": None},
            "pickleImportScan": None,
        }
