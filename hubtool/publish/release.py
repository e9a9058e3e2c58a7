"""``hubtool publish``: the release gate. Requirements on the run's metrics (``accuracy>=0.90``),
the difference with the previous tagged release's model-index, then a tagged push."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubtool.core.cardmeta import card_data, model_index_rows
from hubtool.core.hubclient import HubSettings
from hubtool.errors import GateFailed, UsageError

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
REQUIREMENT = re.compile(r"^\s*([\w.-]+)\s*(>=|<=|==|>|<)\s*(-?[\d.]+(?:e-?\d+)?)\s*$")
VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)")

if TYPE_CHECKING:
    from huggingface_hub import HfApi


@dataclass(frozen=True)
class Requirement:
    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def parse_requirement(text: str) -> Requirement:
    m = REQUIREMENT.match(str(text))
    if not m:
        raise UsageError(
            f"Cannot read the requirement {text!r}.",
            "Write METRIC OP VALUE, e.g. 'accuracy>=0.90' or 'perplexity<20'.",
        )
    return Requirement(m.group(1), m.group(2), float(m.group(3)))


def gate(metrics: dict[str, float], requirements: list[Requirement]) -> list[str]:
    """Lines of the gate's verdict; raises GateFailed when any requirement fails."""
    lines: list[str] = []
    failed: list[str] = []
    for req in requirements:
        value = metrics.get(req.metric)
        if value is None:
            failed.append(f"{req}: the run has no metric {req.metric!r}")
            continue
        ok = OPERATORS[req.op](float(value), req.bound)
        line = f"{req}: {value:.4f} {'ok' if ok else 'FAILS'}"
        (lines if ok else failed).append(line)
    if failed:
        raise GateFailed(
            "Release refused; nothing was pushed:" + "".join(f"\n  - {f}" for f in failed),
            f"Metrics measured: {', '.join(f'{k} {v:.4f}' for k, v in metrics.items())}.",
        )
    return lines


def version_key(tag: str) -> tuple[int, ...] | None:
    m = VERSION.match(tag)
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def previous_release(api: HfApi, repo_id: str, tag: str) -> tuple[str, dict[str, float]] | None:
    """(tag, metrics from its model-index) of the newest release before ``tag``, if any."""
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        tags = [t.name for t in api.list_repo_refs(repo_id).tags]
    except RepositoryNotFoundError:
        return None
    new = version_key(tag)
    versions = {t: v for t in tags if t != tag and (v := version_key(t)) is not None}
    older = {t: v for t, v in versions.items() if new is None or v < new}
    if not older:
        return None
    last = max(older, key=lambda t: older[t])
    try:
        path = api.hf_hub_download(repo_id, "README.md", revision=last)
    except EntryNotFoundError:
        return last, {}
    return last, index_metrics(card_data(Path(path).read_text(errors="replace")) or {})


def index_metrics(card: dict[str, Any]) -> dict[str, float]:
    """metric type -> value, from a card's model-index."""
    rows = model_index_rows(card)
    return {r["type"]: float(r["value"]) for r in rows if isinstance(r["value"], (int, float))}


def comparison(
    previous: tuple[str, dict[str, float]] | None, metrics: dict[str, float]
) -> list[str]:
    if previous is None:
        return ["No earlier release to compare with."]
    tag, old = previous
    lines = [f"Compared with {tag}:"]
    for name, value in metrics.items():
        if name in old:
            lines.append(f"  {name}: {old[name]:.4f} -> {value:.4f} ({value - old[name]:+.4f})")
        else:
            lines.append(f"  {name}: {value:.4f} (new)")
    return lines


def publish_release(
    run_dir: Path,
    opts: Any,  # push.PushOptions with a tag
    requirements: list[Requirement],
    echo: Callable[[str], None],
    settings: HubSettings,
) -> Any:
    """Gate, compare with the last release, push and tag. Returns the PushResult."""
    from hubtool.cards.stage import read_run
    from hubtool.core.hubclient import hub_errors, make_api
    from hubtool.publish.push import push_run

    metrics = read_run(run_dir).metrics.get("metrics", {})
    for line in gate(metrics, requirements):
        echo(line)
    with hub_errors(settings, f"Reading the releases of {opts.repo_id}"):
        previous = previous_release(make_api(settings), opts.repo_id, opts.tag)
    for line in comparison(previous, metrics):
        echo(line)
    return push_run(run_dir, opts, settings)
