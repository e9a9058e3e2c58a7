"""Human-readable views of search results and model info, as wide as the terminal (80
columns when not a terminal). Ids, paths and values are never cut: they are what the user
copies next; only descriptions are clipped to the width."""

from __future__ import annotations

from hubtool.core.output import clip, human, size, table, terminal_width
from hubtool.discover.info import ModelView
from hubtool.discover.search import SearchResult


def languages_cell(languages: list[str], multilingual: bool) -> str:
    if multilingual:
        return f"multi:{len(languages)}" if len(languages) > 1 else "multi"
    return ",".join(languages) or "-"


def search_table(results: list[SearchResult], width: int | None = None) -> str:
    width = width or terminal_width()
    headers = ["MODEL", "FIT", "LANG", "LICENSE", "PARAMS", "DL", "LIKES"]
    widths = [max([28, *(len(r.id) for r in results)]), 5, 8, 10, 6, 6, 5]
    lines = [table(headers, [], widths)]
    for r in results:
        row = [
            r.id,
            r.fit,
            languages_cell(r.languages, r.multilingual),
            r.license or "-",
            human(r.parameters),
            human(r.downloads),
            human(r.likes),
        ]
        lines.append(table(headers, [row], widths, [False] * 4 + [True] * 3).split("\n")[1])
        updated = (r.last_modified or "")[:10] or "-"
        detail = f"    {r.library or '-'} · updated {updated} · {'; '.join(r.why)}"
        lines.append(clip(detail, width))
    return "\n".join(lines)


def info_text(v: ModelView, width: int | None = None) -> str:
    width = width or terminal_width()
    out = [v.id, "=" * min(len(v.id), width)]
    facts = [
        (
            "revision",
            (v.sha or "-")[:12]
            + (f"  (updated {v.last_modified[:10]})" if v.last_modified else ""),
        ),
        ("task", v.pipeline_tag or "- (no pipeline tag)"),
        ("library", v.library or "-"),
        ("license", v.license or "- (none declared)"),
        (
            "languages",
            ", ".join(v.languages) + (" (multilingual)" if v.multilingual else "")
            if v.languages
            else ("multilingual" if v.multilingual else "-"),
        ),
        ("datasets", ", ".join(v.datasets) or "-"),
        (
            "base model",
            ", ".join(v.base_model)
            + (f" ({v.base_model_relation})" if v.base_model_relation else "")
            if v.base_model
            else "-",
        ),
        ("parameters", _parameters(v)),
        ("architecture", ", ".join(v.architectures) or (v.model_type or "-")),
        ("popularity", f"{human(v.downloads)} downloads, {human(v.likes)} likes"),
    ]
    if v.private or v.gated:
        facts.append(
            (
                "access",
                ("private " if v.private else "") + (f"gated ({v.gated})" if v.gated else ""),
            )
        )
    out += [f"{k:<13}{val}" for k, val in facts]  # ids and values: never cut
    if v.eval_results:
        out += ["", "Evaluation results (model-index):"]
        for e in v.eval_results:
            split = f" [{e['split']}]" if e.get("split") else ""
            value = f"  {e['metric']} = {e['value']}"  # never cut; the context may be
            out.append(value + clip(f"  ({e['task']} · {e['dataset']}{split})", width - len(value)))
    out += ["", "Can serve:"]
    for t in v.tasks:
        out.append(clip(f"  {t['fit']:<6}{t['task']:<22}{t['how']}", width))
    out += ["", f"Files ({len(v.files)}, {size(v.total_size)}):"]
    for f in v.files:
        out.append(f"  {size(f['size']):>10}  {f['path']}{'  (LFS)' if f['lfs'] else ''}")
    return "\n".join(out)


def _parameters(v: ModelView) -> str:
    if not v.parameters:
        return "-"
    by_dtype = ", ".join(f"{k} {human(n)}" for k, n in v.parameters_by_dtype.items())
    return f"{human(v.parameters)} ({by_dtype})"


def push_plan_text(plan) -> str:
    """The dry run's report: what a push would do, the card's diff, the check's verdict."""
    opts = plan.options
    if not plan.repo_exists:
        where = f"would create {'private' if opts.private else 'public'} repo {opts.repo_id}"
    else:
        where = f"{opts.repo_id} ({'private' if plan.repo_private else 'public'})"
    target = f"a pull request against {opts.revision}" if opts.create_pr else opts.revision
    lines = [f"Push plan: {where}, one commit to {target}"]
    width = max([len(c.path) for c in plan.changes] + [4])
    for c in sorted(plan.changes, key=lambda c: (c.status == "same", c.path)):
        lines.append(f"  {c.status:<7} {c.path:<{width}} {size(c.size):>9}")
    sent = plan.to_send
    total = sum(c.size for c in sent if c.status != "delete")
    lines.append(
        f"{len(sent)} file(s) to send ({size(total)}), "
        f"{len(plan.changes) - len(sent)} unchanged"
        + (f", then tag {opts.tag}" if opts.tag else "")
    )
    lines += [f"  never uploaded: {path} ({why})" for path, why in plan.skipped]
    lines.append("Card diff:" if plan.card_diff else "Card: unchanged")
    if plan.card_diff:
        lines.append(plan.card_diff.rstrip())
    verdict = "passes" if plan.check.ok else "FAILS: " + "; ".join(plan.check.problems)
    lines.append(f"Metadata check: {verdict}")
    lines += [f"  note: {n}" for n in plan.check.warnings + plan.notes]
    return "\n".join(lines)
