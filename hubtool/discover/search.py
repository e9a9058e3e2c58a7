"""``hubtool search``: which checkpoints can I start from for this task in this language?

The Hub's tag filter alone misses models without a pipeline tag, models whose card names the
language without a tag, and drowns monolingual models under multilingual ones. So a search
runs up to four listings through ``HfApi`` (in parallel, each fetched lazily):

1. tagged with the language and listed for the task;
2. tagged with the language, any task: kept when the architecture serves the task;
3. tagged ``multilingual`` and listed for the task;
4. listed for the task without the tag: kept when the card data or the id names the language.

Each result says how it can serve the task (``ready``/``base``/``no``) and why it matched.

Relevance (the default sort) = fit × language × popularity, where fit is 3 for a ready head,
1.5 for a base model and 0.2 for no; language is 2 for a model dedicated to the language, 1.5
when only its card or id names it, 1.2 for 2–5 languages and 0.6 for more (or a bare
``multilingual`` tag); popularity is 1 + log10(1 + downloads) + 0.5 × log10(1 + likes).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from hubtool import tasks as trainable
from hubtool.core import rundir
from hubtool.core.hubclient import HubSettings, hub_errors, make_api, probe
from hubtool.core.languages import Language, find_language, language_of_tag

SORTS = {"relevance": None, "downloads": "downloads", "likes": "likes", "recent": "lastModified"}
EXPAND = [
    "author",
    "cardData",
    "config",
    "downloads",
    "lastModified",
    "library_name",
    "likes",
    "pipeline_tag",
    "safetensors",
    "tags",
    "gated",
]
FIT_WEIGHT = {"ready": 3.0, "base": 1.5, "no": 0.2}
CACHE_TTL = 600


@dataclass(frozen=True)
class SearchQuery:
    task: str
    language: Language | None = None
    text: str | None = None
    license: str | None = None
    library: str | None = None
    author: str | None = None
    max_params: int | None = None
    min_downloads: int | None = None
    sort: str = "relevance"
    limit: int = 20
    include_unfit: bool = False

    def cache_key(self) -> str:
        data = asdict(self)
        data["language"] = self.language.code if self.language else None
        return json.dumps(data, sort_keys=True)


@dataclass
class SearchResult:
    """One checkpoint, as ``--json`` prints it (the field names are stable)."""

    id: str
    fit: str
    fit_reason: str
    why: list[str]
    languages: list[str]
    multilingual: bool
    language_count: int | None
    license: str | None
    library: str | None
    parameters: int | None
    downloads: int
    likes: int
    last_modified: str | None
    pipeline_tag: str | None
    score: float | None = None
    _rank: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


# -- reading one listing row ------------------------------------------------------------------
def row_languages(tags: list[str], card: dict[str, Any]) -> tuple[list[str], bool, bool]:
    """(language codes, multilingual flag, codes that come only from the card)."""
    from_tags = [lang.code for t in tags if (lang := language_of_tag(t))]
    card_langs = card.get("language") or card.get("languages") or []
    card_langs = [card_langs] if isinstance(card_langs, str) else list(card_langs)
    from_card = [lang.code for c in card_langs if isinstance(c, str) and (lang := find_language(c))]
    codes = list(dict.fromkeys(from_tags + from_card))
    multilingual = "multilingual" in tags or "multilingual" in card_langs or len(codes) > 1
    return codes, multilingual, not from_tags and bool(from_card)


def _card(row: Any) -> dict[str, Any]:
    card = getattr(row, "card_data", None)
    if card is None:
        return {}
    return card.to_dict() if hasattr(card, "to_dict") else dict(card)


def card_license(tags: list[str], card: dict[str, Any]) -> str | None:
    lic = card.get("license")
    if isinstance(lic, str):
        return lic
    return next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)


def _id_names(repo_id: str, lang: Language) -> bool:
    tokens = set(re.split(r"[-_/.]", repo_id.lower()))
    return bool(tokens & {lang.code, lang.iso3}) or any(n in repo_id.lower() for n in lang.names)


def to_result(row: Any, q: SearchQuery, source: str) -> SearchResult | None:
    """A listing row judged against the query, or None when it does not qualify."""
    tags = list(row.tags or [])
    card = _card(row)
    config = row.config or {}
    fit = trainable.fit(
        q.task,
        row.pipeline_tag,
        list(config.get("architectures") or []),
        config.get("model_type"),
        row.library_name,
    )
    codes, multilingual, card_only = row_languages(tags, card)
    why = _why(row, q, source, fit.how, codes, card_only)
    if why is None:
        return None
    params = row.safetensors.total if getattr(row, "safetensors", None) else None
    last = row.last_modified.isoformat() if getattr(row, "last_modified", None) else None
    return SearchResult(
        id=row.id,
        fit=fit.level,
        fit_reason=fit.how,
        why=why,
        languages=codes,
        multilingual=multilingual,
        language_count=len(codes) or None,
        license=card_license(tags, card),
        library=row.library_name,
        parameters=params,
        downloads=row.downloads or 0,
        likes=row.likes or 0,
        last_modified=last,
        pipeline_tag=row.pipeline_tag,
        _rank={"card_only": card_only, "source": source},
    )


def _why(
    row: Any, q: SearchQuery, source: str, how: str, codes: list[str], card_only: bool
) -> list[str] | None:
    lang = q.language
    why: list[str] = []
    if lang is not None:
        if source == "multilingual":
            why.append("multilingual model")
        elif lang.code in codes and not card_only:
            why.append(f"tagged {lang.code}")
        elif lang.code in codes:
            why.append(f"card language: {lang.code} (no {lang.code} tag)")
        elif _id_names(row.id, lang):
            why.append(f"id names {lang.name}")
        else:
            return None
    if row.pipeline_tag == q.task:
        why.append(f"listed for {q.task}")
    elif row.pipeline_tag is None:
        why.append(f"no pipeline tag; {how}")
    else:
        why.append(f"listed for {row.pipeline_tag}; {how}")
    return why


# -- ranking ------------------------------------------------------------------------------------
def relevance(r: SearchResult) -> float:
    if not r.multilingual and r.languages:
        lang = 1.5 if r._rank.get("card_only") or r.why[0].startswith("id names") else 2.0
    elif r.language_count and r.language_count <= 5:
        lang = 1.2
    elif r.multilingual:
        lang = 0.6
    else:
        lang = 1.0
    popularity = 1 + math.log10(1 + r.downloads) + 0.5 * math.log10(1 + r.likes)
    return round(FIT_WEIGHT[r.fit] * lang * popularity, 3)


def rank(results: Iterable[SearchResult], q: SearchQuery) -> list[SearchResult]:
    kept = [
        r
        for r in results
        if (q.include_unfit or r.fit != "no")
        and (q.min_downloads is None or r.downloads >= q.min_downloads)
        and (q.max_params is None or r.parameters is None or r.parameters <= q.max_params)
    ]
    key: Callable[[SearchResult], Any]
    if q.sort == "relevance":
        for r in kept:
            r.score = relevance(r)
        key = lambda r: (-(r.score or 0), -r.downloads, r.id)  # noqa: E731
    elif q.sort == "recent":
        key = lambda r: (r.last_modified or "", r.id)  # noqa: E731
        return sorted(kept, key=key, reverse=True)[: q.limit]
    else:
        key = lambda r: (-getattr(r, q.sort), r.id)  # noqa: E731
    return sorted(kept, key=key)[: q.limit]


# -- fetching -----------------------------------------------------------------------------------
def plan(q: SearchQuery) -> list[tuple[str, dict[str, Any]]]:
    """(source, list_models arguments) for each listing a query needs."""
    extra = [f"license:{q.license}"] if q.license else []
    extra += [q.library] if q.library else []
    base: dict[str, Any] = {
        "search": q.text,
        "author": q.author,
        "expand": EXPAND,
        "sort": SORTS[q.sort] or "downloads",
    }
    if q.language is None:
        return [("task", {**base, "filter": extra or None, "pipeline_tag": q.task})]
    tag = [q.language.code, *extra]
    return [
        ("tagged", {**base, "filter": tag, "pipeline_tag": q.task}),
        ("tagged-any-task", {**base, "filter": tag}),
        ("multilingual", {**base, "filter": ["multilingual", *extra], "pipeline_tag": q.task}),
        ("task", {**base, "filter": extra or None, "pipeline_tag": q.task}),
    ]


def fetch(settings: HubSettings, q: SearchQuery) -> list[SearchResult]:
    """Every qualifying candidate from the planned listings, deduplicated by id."""
    api = make_api(settings)
    pool = max(q.limit * 3, 60)

    def run(item: tuple[str, dict[str, Any]]) -> list[SearchResult]:
        source, kwargs = item
        rows = api.list_models(limit=pool, **{k: v for k, v in kwargs.items() if v})
        found = []
        for row in islice(rows, pool):
            result = to_result(row, q, source)
            if result is not None:
                found.append(result)
        return found

    with hub_errors(settings, "Searching models"):
        probe(api)
        with ThreadPoolExecutor(4) as pool_exec:
            batches = list(pool_exec.map(run, plan(q)))
    merged: dict[str, SearchResult] = {}
    for batch in batches:
        for r in batch:
            merged.setdefault(r.id, r)
    return list(merged.values())


def search(settings: HubSettings, q: SearchQuery, refresh: bool = False) -> list[SearchResult]:
    """Ranked results, served from a short-lived cache under HF_HOME unless ``refresh``."""
    path = settings.cache_dir / "search" / f"{_digest(settings.cache_scope() + q.cache_key())}.json"
    if not refresh:
        cached = _read_cache(path)
        if cached is not None:
            return [SearchResult(**r) for r in cached]
    results = rank(fetch(settings, q), q)
    _write_cache(path, [r.as_json() for r in results])
    return results


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_cache(path: Path) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or time.time() - data.get("created", 0) > CACHE_TTL:
        return None
    return data.get("results")


def _write_cache(path: Path, results: list[dict[str, Any]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        rundir.write_text(path, json.dumps({"created": time.time(), "results": results}))
    except OSError:
        pass  # a cache that cannot be written only costs speed
