"""Model and dataset pages, as the Hub shows them: the rendered card, the metadata as tags,
the evaluation results from the model-index, the widget example, the files with sizes, the
commit history and the tags. HTML only, no script, nothing fetched from elsewhere (the page's
Content-Security-Policy says so), so a card is seen exactly as it will look, offline.

Registered after the API routes (``server`` imports this module last): ``/NS/NAME`` only
matches what no API route took.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from hubtool.core.output import size
from hubtool.hub import tensorboard, views
from hubtool.hub.metadata import as_list, model_index_rows, split_front_matter
from hubtool.hub.protocol import ApiError, Response
from hubtool.hub.router import Ctx, RouteTable
from hubtool.hub.service import REPO_TYPES, RepoRef

RESERVED = {"api", "datasets", "spaces", "lfs-cdn", "lfs-upload", "favicon.ico"}
POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'"
COMMITS_SHOWN = 20

route = RouteTable()


@functools.cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> str:
    """Markdown as the pages render it: no raw HTML, tables and strikethrough."""
    return str(_markdown().render(text))


@functools.cache
def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hubtool.templates", "."),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["size"] = size
    return env


def html(template: str, status: int = 200, **context: Any) -> Response:
    body = _templates().get_template(template).render(**context)
    headers = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff"}
    return Response.text(body, status, headers, content_type="text/html; charset=utf-8")


@route("GET", "/")
def index_page(c: Ctx) -> Response:
    from hubtool.hub.db import ListQuery

    rows = c.svc.db.list_repos(ListQuery(repo_type="model", sort="lastModified", limit=100))
    visible = [r for r in rows if not r.private]
    return html("hub_index.html.j2", repos=visible, title="Models")


@route("GET", r"/(?P<ns>[^/]+)/(?P<name>[^/]+)")
def model_page(c: Ctx) -> Response:
    return _repo_page(c, _model_ref(c))


@route("GET", r"/(?P<ns>[^/]+)/(?P<name>[^/]+)/tree/(?P<rev>[^/]+)")
def files_page(c: Ctx) -> Response:
    return _repo_page(c, _model_ref(c), "files")


@route("GET", r"/(?P<ns>[^/]+)/(?P<name>[^/]+)/tensorboard")
def metrics_page(c: Ctx) -> Response:
    return _repo_page(c, _model_ref(c), "metrics")


def _model_ref(c: Ctx) -> RepoRef:
    """The model repo a page path names (``/api/…`` and the other reserved roots are not)."""
    if c.params["ns"] in RESERVED:
        raise ApiError(404, "Sorry, we can't find the page you are looking for.")
    return RepoRef("model", f"{c.params['ns']}/{c.params['name']}")


@route("GET", r"/(?P<t>datasets)/(?P<ns>[^/]+)/(?P<name>[^/]+)")
def dataset_page(c: Ctx) -> Response:
    return _repo_page(c, RepoRef(REPO_TYPES["datasets"], f"{c.params['ns']}/{c.params['name']}"))


def _repo_page(c: Ctx, ref: RepoRef, tab: str = "card") -> Response:
    try:
        row = c.svc.readable(c.who, ref)
    except ApiError:
        return html("hub_missing.html.j2", 404, repo_id=ref.repo_id, title="Not found")
    context = page_context(c, row)
    if tab == "metrics":
        context["curves"] = _curves(c, row, context["files"])
    return html("hub_repo.html.j2", tab=tab, **context)


def _curves(c: Ctx, row: Any, files: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The Training metrics tab's curves, drawn from the repo's TensorBoard event files."""
    from markupsafe import Markup

    events = [f for f in files if tensorboard.is_event_file(f["path"])][:20]
    repo = c.svc.git(row)
    blobs = [_content(c, repo, f) for f in events if f["size"] <= tensorboard.MAX_FILE_BYTES]
    curves = tensorboard.scalars([b for b in blobs if b])
    return [
        {"tag": tag, "svg": Markup(tensorboard.svg(tag, points))} for tag, points in curves.items()
    ]


def page_context(c: Ctx, row: Any) -> dict[str, Any]:
    """Everything the repo page shows, read from the repo's head commit."""
    has_git = bool(row.sha) and not row.metadata_only  # catalog rows have no files
    repo = c.svc.git(row) if has_git else None
    sha = row.sha
    files = views.tree_entries(repo, repo.list_tree(sha, "", True)) if repo else []
    files = [{"lfs": None, **f} for f in files if f["type"] == "file"]
    readme_entry = next((f for f in files if f["path"] == "README.md"), None)
    readme = ""
    if repo is not None and readme_entry is not None:
        readme = repo.read_blob(readme_entry["oid"]).decode(errors="replace")
    _, body = split_front_matter(readme)
    card = row.meta.get("cardData") or {}
    html_body = _markdown().render(body) if body.strip() else ""
    refs = views.refs_view(repo.refs() if repo else [], False)
    return {
        "title": row.repo_id,
        "repo": row,
        "kind": row.repo_type,
        "sha": sha,
        "tags": page_tags(row, card),
        "card_html": EMPTY_HEAD.sub("", html_body),
        "usage": _usage(body),
        "has_metrics": any(tensorboard.is_event_file(f["path"]) for f in files),
        "results": model_index_rows(card),
        "widget": widget_view(row.meta.get("widgetData") or []),
        "files": files,
        "total_size": sum(f["size"] for f in files),
        "commits": repo.log(sha, skip=0, limit=COMMITS_SHOWN) if repo else [],
        "git_tags": refs["tags"],
        "branches": refs["branches"],
    }


WIDGET_CHARS = 2000  # of one field of a widget example, shown on the page


def widget_view(examples: list[Any]) -> list[list[tuple[str, str]]]:
    """Each widget example as (label, text) lines: a conversation's turns by role, a text
    and the fields beside it (a question's context, …) by name; anything else as text."""
    shown = []
    for example in examples[:5]:
        if not isinstance(example, dict):
            shown.append([("", str(example)[:WIDGET_CHARS])])
            continue
        lines: list[tuple[str, str]] = []
        for key, value in example.items():
            if key == "messages" and isinstance(value, list):
                lines += [_turn(m) for m in value[:20]]
            elif key != "example_title" and isinstance(value, (str, int, float)):
                lines.append(("" if key == "text" else key, str(value)[:WIDGET_CHARS]))
        shown.append(lines)
    return [lines for lines in shown if lines]


def _turn(message: Any) -> tuple[str, str]:
    if not isinstance(message, dict):
        return "", str(message)[:WIDGET_CHARS]
    return str(message.get("role") or ""), str(message.get("content") or "")[:WIDGET_CHARS]


def _content(c: Ctx, repo: Any, entry: dict[str, Any]) -> bytes | None:
    """A file's bytes: the git blob, or the LFS object it points to (None: not stored)."""
    lfs = entry.get("lfs")
    if not lfs:
        return repo.read_blob(entry["oid"])
    oid = lfs.get("oid") if isinstance(lfs, dict) else None
    if not oid or not c.svc.lfs.has(oid):
        return None
    return c.svc.lfs.path(oid).read_bytes()


# a Markdown table whose header cells are all empty (| | |): the page shows no header row
EMPTY_HEAD = re.compile(r"<thead>\s*<tr>(?:\s*<th(?: [^>]*)?>\s*</th>)+\s*</tr>\s*</thead>\s*")
USAGE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def _usage(body: str) -> str | None:
    """The card's first Python block: the page's "Use this model" box."""
    found = USAGE.search(body[:200_000])
    return found.group(1)[:4000] if found else None


def page_tags(row: Any, card: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(kind, label, link) chips: task, library, languages, license, datasets, base model."""
    chips: list[tuple[str, str, str | None]] = []
    task = row.meta.get("pipeline_tag") or row.pipeline_tag
    library = row.meta.get("library_name") or row.library_name
    if row.repo_type == "model" and task:
        chips.append(("task", task, None))
    if row.repo_type == "model" and library:
        chips.append(("library", library, None))
    chips += [("language", code, None) for code in as_list(card.get("language"))]
    chips += [("license", str(lic), None) for lic in as_list(card.get("license"))]
    chips += [("dataset", d, f"/datasets/{d}") for d in as_list(card.get("datasets"))]
    for base in as_list(card.get("base_model")):
        relation = card.get("base_model_relation") or "base model"
        chips.append(("base model", f"{relation}: {base}", f"/{base}"))
    shown = {label for _, label, _ in chips}
    chips += [("tag", t, None) for t in as_list(card.get("tags")) if t not in shown]
    return chips
