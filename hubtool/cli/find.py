"""`hubtool search` and `hubtool info`: finding a checkpoint."""

from __future__ import annotations

import click

from hubtool.cli.options import count, settings
from hubtool.core.output import out


@click.command("search")
@click.argument("text", required=False)
@click.option("--task", required=True, help="Hub pipeline tag, e.g. fill-mask.")
@click.option("--lang", help="Language: fr, fra, french or français.")
@click.option("--license", "license_", help="License id, e.g. apache-2.0.")
@click.option("--library", help="Library, e.g. transformers.")
@click.option("--author", help="Namespace (user or organization).")
@click.option("--max-params", help="At most this many parameters (e.g. 150M).")
@click.option("--min-downloads", help="At least this many downloads (e.g. 1000 or 10k).")
@click.option(
    "--sort",
    type=click.Choice(["relevance", "downloads", "likes", "recent"]),
    default="relevance",
    show_default=True,
    help="Order of the results.",
)
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option(
    "--include-unfit",
    is_flag=True,
    help="Also list checkpoints whose architecture cannot serve the task.",
)
@click.option("--refresh", is_flag=True, help="Bypass the 10-minute result cache.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (fields in README).")
def search_command(
    text,
    task,
    lang,
    license_,
    library,
    author,
    max_params,
    min_downloads,
    sort,
    limit,
    include_unfit,
    refresh,
    as_json,
) -> None:
    """Find checkpoints that can serve TASK in a language, ranked by fit."""
    from hubtool.core.architectures import resolve_task
    from hubtool.core.languages import resolve_language
    from hubtool.core.output import spinner
    from hubtool.discover.search import SearchQuery, search

    query = SearchQuery(
        task=resolve_task(task),
        language=resolve_language(lang) if lang else None,
        text=text,
        license=license_,
        library=library,
        author=author,
        max_params=count(max_params),
        min_downloads=count(min_downloads),
        sort=sort,
        limit=limit,
        include_unfit=include_unfit,
    )
    with spinner("Searching the Hub…", enabled=not as_json):
        results = search(settings(), query, refresh=refresh)
    if as_json:
        out.json([r.as_json() for r in results])
    else:
        from hubtool.cli.render import search_table

        out.result(search_table(results) if results else "No matching checkpoints.")


@click.command("info")
@click.argument("model")
@click.option("--revision", help="A branch, tag or commit (default: main).")
@click.option("--json", "as_json", is_flag=True, help="Print the view as JSON.")
def info_command(model: str, revision: str | None, as_json: bool) -> None:
    """Show one model in depth: card metadata, files, parameters, what tasks it can serve."""
    from hubtool.discover.info import model_view

    view = model_view(settings(), model, revision)
    if as_json:
        out.json(view.as_json())
    else:
        from hubtool.cli.render import info_text

        out.result(info_text(view))
