"""``hubtool hub import-catalog``: load real Hub listing rows as metadata-only repos.

Accepts the shapes in ``shared/data/hub-catalog/``: JSON lines (optionally gzipped) of
``list_models(full=True)`` rows, and CSV exports whose ``tags`` column is a Python-list string.
Rows are upserted: importing the same file twice leaves one row per repo.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hubtool.hub.metadata import as_list
from hubtool.hub.service import HubService


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        text: io.TextIOBase = fh
        stem = path.name.removesuffix(".gz")
        if stem.endswith(".csv"):
            for row in csv.DictReader(text):
                yield _from_csv(row)
        else:
            for n, line in enumerate(text, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise ValueError(f"{path}:{n}: not a JSON object ({exc})") from None


def _from_csv(row: dict[str, str]) -> dict[str, Any]:
    tags = row.get("tags") or "[]"
    try:
        parsed = ast.literal_eval(tags)
    except (ValueError, SyntaxError):
        parsed = []
    last = (row.get("lastModified") or "").replace(" ", "T").replace("+00:00", ".000Z")
    return {
        "modelId": row.get("modelId") or row.get("id"),
        "author": row.get("author"),
        "downloads": int(row.get("downloads") or 0),
        "likes": int(row.get("likes") or 0),
        "lastModified": last or None,
        "tags": parsed,
        "sha": row.get("sha") or None,
        "pipeline_tag": row.get("pipeline_tag") or None,
        "private": row.get("private") == "True",
    }


def _values(raw: dict[str, Any]) -> dict[str, Any] | None:
    repo_id = raw.get("modelId") or raw.get("id")
    if not isinstance(repo_id, str) or not repo_id:
        return None
    namespace = repo_id.split("/")[0] if "/" in repo_id else raw.get("author")
    last = raw.get("lastModified") or "2022-03-02T23:29:04.000Z"
    config = raw.get("config") if isinstance(raw.get("config"), dict) else None
    meta: dict[str, Any] = {
        "tags": as_list(raw.get("tags")),
        "siblings": [
            s.get("rfilename")
            for s in raw.get("siblings") or []
            if isinstance(s, dict) and s.get("rfilename")
        ],
    }
    if config:
        meta["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
    if isinstance(raw.get("cardData"), dict):
        meta["cardData"] = raw["cardData"]
    params = (
        (raw.get("safetensors") or {}).get("total")
        if isinstance(raw.get("safetensors"), dict)
        else None
    )
    if params:
        meta["safetensors"] = raw["safetensors"]
    return {
        "repo_type": "model",
        "repo_id": repo_id,
        "namespace": namespace,
        "private": 0,
        "metadata_only": 1,
        "sha": raw.get("sha"),
        "created_at": raw.get("createdAt") or last,
        "last_modified": last,
        "downloads": int(raw.get("downloads") or 0),
        "likes": int(raw.get("likes") or 0),
        "pipeline_tag": raw.get("pipeline_tag"),
        "library_name": raw.get("library_name"),
        "num_parameters": params,
        "meta": meta,
    }


def import_catalog(svc: HubService, path: Path) -> tuple[int, int]:
    """(rows imported, rows skipped). Existing repos with files are never overwritten."""
    imported = skipped = 0
    db = svc.db
    with db.tx() as conn:
        for raw in read_rows(path):
            values = _values(raw) if isinstance(raw, dict) else None
            if values is None:
                skipped += 1
                continue
            existing = db.get_repo("model", values["repo_id"])
            if existing is not None and not existing.metadata_only:
                skipped += 1
                continue
            if existing is not None:
                db.update_repo(
                    conn,
                    existing.rowid,
                    {k: v for k, v in values.items() if k not in ("repo_type", "repo_id")},
                )
            else:
                db.insert_repo(conn, {**values, "object_id": secrets.token_hex(12)})
            imported += 1
    return imported, skipped
