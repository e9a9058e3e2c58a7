"""``hubtool card --check``: everything the Hub and a careful reader would reject, found before
the card leaves the machine. Problems fail the check; warnings are printed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hubtool.core.cardmeta import as_list, card_data, model_index_rows, split_front_matter
from hubtool.core.cardrules import ISO_639_1, validate_card

# Escaped text (``\{%``, ``\[``) is a value hubtool wrote inert, not a placeholder or link.
PLACEHOLDERS = re.compile(
    r"more information needed|\bTODO\b|\bTBD\b|\bFIXME\b|lorem ipsum|(?<!\\)\{(?<!\\)\{|"
    r"(?<!\\)\{%|<placeholder>|(?<!\\)\[your[ _-]",
    re.I,
)
LOCAL_PATH = re.compile(
    r"(?<![\w:/.])(?:/(?:home|tmp|Users|root|var|mnt|opt|work|data|srv|private)/|~/)"
    r"|\b[A-Za-z]:\\|file://"
)
TOKEN_LIKE = re.compile(r"\b(?:hf|api\\?_org)\\?_[A-Za-z0-9]{30,}")
LINK = re.compile(r"(?<!\\)\[(?:[^\]\\]|\\.)*\]\(([^)\s]*)[^)]*\)")
RESTRICTIVE = re.compile(r"-nc|-nd|^other$|^unknown$|research|noncommercial", re.I)


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def listed(self) -> str:
        """The problems as indented bullet lines, for an error message."""
        return "".join(f"\n  - {p}" for p in self.problems)


def check_card(
    text: str,
    metrics: dict[str, Any],
    known_paths: list[str],
    missing_facts: list[str],
    strict: bool,
) -> Report:
    """Every problem of a rendered card (local rules; the server's are added by the caller)."""
    report = Report()
    errors, _ = validate_card(text)
    report.problems += [f"front matter: {e}" for e in errors]
    meta = card_data(text)
    if meta is None:  # validate_card has said why
        return report
    _, body = split_front_matter(text)
    report.problems += _language_problems(meta)
    report.problems += _index_problems(meta, metrics)
    report.problems += _text_problems(text, known_paths)
    report.problems += _link_problems(body)
    if not meta.get("license"):
        (report.problems if strict else report.warnings).append(
            "no license: the base model's card names none; set card.license"
        )
    for fact in missing_facts:
        (report.problems if strict else report.warnings).append(
            f"the card does not state the {fact} (set it in the card: section or by flag)"
        )
    return report


def _language_problems(meta: dict[str, Any]) -> list[str]:
    out = []
    for code in as_list(meta.get("language")):
        bare = code == "multilingual" or code in ISO_639_1 or re.fullmatch(r"[a-z]{3}", code)
        if not bare:
            out.append(f"language {code!r} is not an ISO 639 code (use 'fr', not 'fr-FR')")
    return out


def _index_problems(meta: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """The model-index must hold exactly the run's metrics, with their values."""
    found = {row["type"]: row["value"] for row in model_index_rows(meta)}
    expected = metrics.get("metrics", {})
    out = [f"model-index lacks metric {k!r}" for k in expected if k not in found]
    out += [
        f"model-index has metric {k!r} the run did not compute" for k in found if k not in expected
    ]
    for key, value in expected.items():
        got = found.get(key)
        if key in found and not _close(got, value):
            out.append(f"model-index value of {key!r} is {got}, the run measured {value}")
    return out


def _close(got: Any, value: float) -> bool:
    if not isinstance(got, (int, float)):
        return False
    return abs(float(got) - float(value)) <= 1e-5 * max(1.0, abs(float(value)))


def _text_problems(text: str, known_paths: list[str]) -> list[str]:
    out = []
    for match in sorted({m.group(0) for m in PLACEHOLDERS.finditer(text)}):
        out.append(f"placeholder text {match!r}")
    paths = {m.group(0) for m in LOCAL_PATH.finditer(text)}
    paths |= {p for p in known_paths if p and len(p) > 3 and p in text}
    out += [f"local path {p!r} in the card" for p in sorted(paths)]
    if TOKEN_LIKE.search(text):
        out.append("a token-like string (hf_…) is in the card: remove it and revoke the token")
    return out


def _link_problems(body: str) -> list[str]:
    out = []
    for target in LINK.findall(body):
        parts = urlsplit(target)
        fine = (parts.scheme in ("http", "https") and parts.netloc) or (
            not parts.scheme and not target.startswith("//") and target
        )
        if not fine:
            out.append(f"malformed link target {target!r}")
    return out


def data_license_warning(license_: str | None, dataset: str) -> str | None:
    if not license_:
        return f"the license of the training data ({dataset}) is unknown: check you may use it"
    if RESTRICTIVE.search(license_):
        return f"the training data ({dataset}) is under {license_}: check it allows this use"
    return None


def server_problems(text: str) -> tuple[list[str], str | None]:
    """(problems, note) from the configured endpoint's validate-yaml; a note when unreachable."""
    from huggingface_hub import ModelCard

    try:
        ModelCard(text, ignore_metadata_errors=True).validate()
    except ValueError as exc:
        return [f"the Hub rejects the front matter: {exc}"], None
    except Exception as exc:  # connection refused, DNS, timeouts: fall back to local rules
        return [], f"validate-yaml not reachable ({type(exc).__name__}); local rules only"
    return [], None
