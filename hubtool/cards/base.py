"""What a fine-tuned model inherits from its base model's card: license, languages, data sets,
citation and stated limitations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hubtool.core.cardmeta import as_list, card_data, split_front_matter
from hubtool.core.hubclient import HubSettings, make_api

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^(```|~~~)")
_LIMITS = re.compile(r"limitation|bias|risk", re.I)
_CITATION = re.compile(r"citation|bibtex|cite", re.I)
MAX_CARRIED = 1500


@dataclass
class BaseCard:
    """The facts carried from a base model's card (all empty when it has none)."""

    found: bool = False
    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    languages: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    citation: str | None = None
    limitations: str | None = None


def read_base_card(
    model: str, revision: str | None = None, hub: HubSettings | None = None
) -> BaseCard:
    """The base model's card from its local folder or the Hub ``hub``; empty when absent
    (or when there is no Hub to ask)."""
    if not model:
        return BaseCard()
    local = Path(model) / "README.md"
    if Path(model).is_dir():
        return parse_card(local.read_text(errors="replace")) if local.is_file() else BaseCard()
    if hub is None:
        return BaseCard()
    try:
        path = make_api(hub).hf_hub_download(model, "README.md", revision=revision)
    except Exception:  # no card, no network, no access: the card says it inherited nothing
        return BaseCard()
    return parse_card(Path(path).read_text(errors="replace"))


def parse_card(text: str) -> BaseCard:
    _, body = split_front_matter(text)
    meta = card_data(text) or {}
    license_ = meta.get("license")
    return BaseCard(
        found=True,
        license=str(license_[0] if isinstance(license_, list) else license_) if license_ else None,
        license_name=meta.get("license_name"),
        license_link=meta.get("license_link"),
        languages=as_list(meta.get("language")),
        datasets=as_list(meta.get("datasets")),
        citation=_citation(body),
        limitations=_limitations(body),
    )


def sections(body: str) -> list[tuple[int, str, list[str]]]:
    """(level, heading, lines) for each heading of a Markdown body; code fences respected."""
    out: list[tuple[int, str, list[str]]] = [(0, "", [])]
    fenced = False
    for line in body.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
        m = None if fenced else _HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2), []))
        else:
            out[-1][2].append(line)
    return out


def fenced_blocks(body: str) -> list[tuple[str, str]]:
    """(info string, content) of each fenced code block."""
    blocks: list[tuple[str, str]] = []
    info: str | None = None
    lines: list[str] = []
    for line in body.splitlines():
        m = _FENCE.match(line.strip())
        if m and info is None:
            info, lines = line.strip()[3:].strip().lower(), []
        elif m:
            blocks.append((info or "", "\n".join(lines)))
            info = None
        elif info is not None:
            lines.append(line)
    return blocks


def _citation(body: str) -> str | None:
    for _, content in fenced_blocks(body):
        if re.search(r"^\s*@\w+\s*\{", content, re.M):
            return content.strip()
    for _, heading, lines in sections(body):
        text = "\n".join(lines).strip()
        if _CITATION.search(heading) and re.search(r"@\w+\s*\{", text):
            return text
    return None


def _limitations(body: str) -> str | None:
    """The prose of the base card's bias/limitations section (code blocks dropped), clipped."""
    found = [(h, lines) for _, h, lines in sections(body) if _LIMITS.search(h)]
    found.sort(key=lambda item: not re.search(r"bias|risk|^\W*limitation", item[0], re.I))
    for _, lines in found:
        prose, fenced = [], False
        for line in lines:
            if _FENCE.match(line.strip()):
                fenced = not fenced
            elif not fenced:
                prose.append(line)
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(prose)).strip()
        if text:
            return text if len(text) <= MAX_CARRIED else text[:MAX_CARRIED].rsplit(" ", 1)[0] + " …"
    return None
