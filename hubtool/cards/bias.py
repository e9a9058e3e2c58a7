"""Measured bias for the card.

Fill-mask: the probability a model gives to gendered pronouns in occupation templates
(``hubtool/cards/probes/<lang>.yaml``; English and French shipped, any other language through a
file of the same shape). Causal LMs: the same words' probability as the next word after each
template's opening. Classification: the worst classes and input-length slices, read from the
evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubtool import tasks
from hubtool.core import boundedyaml
from hubtool.core.rundir import RunDir
from hubtool.errors import ConfigError

PROBES_DIR = Path(__file__).resolve().parent / "probes"


def load_probe(language: str | None, path: Path | None = None) -> dict[str, Any] | None:
    """The probe for ``language`` (or the user's file); None when none ships for it."""
    import yaml

    if path is None:
        path = PROBES_DIR / f"{language}.yaml"
        if not language or not path.is_file():
            return None
    try:
        spec = boundedyaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read bias probe {path}: {exc}") from None
    required = ("groups", "templates", "occupations")
    if not isinstance(spec, dict) or any(not spec.get(k) for k in required):
        raise ConfigError(
            f"Bias probe {path} must be a mapping with groups, templates and occupations.",
            f"See {PROBES_DIR / 'en.yaml'} for the shape.",
        )
    for template in spec["templates"]:
        try:
            str(template).format(mask="", occupation="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"Bias probe {path}: the template {str(template)[:80]!r} has a placeholder "
                f"other than {{mask}} and {{occupation}} ({type(exc).__name__}: {exc}).",
                "Double the braces ({{ }}) that are not placeholders.",
            ) from None
    return spec


def _candidate_id(tokenizer: Any, word: str, at_start: bool) -> int | None:
    """The vocabulary id of ``word`` as it would appear at the mask, if it is one token."""
    text = word[:1].upper() + word[1:] if at_start else word
    pieces = tokenizer.tokenize(text if at_start else " " + text)
    if len(pieces) != 1 or pieces[0] == tokenizer.unk_token:
        return None
    return int(tokenizer.convert_tokens_to_ids(pieces[0]))


def gender_probe(model_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Mean probability of each group's words at the mask, per occupation."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    groups: dict[str, list[str]] = spec["groups"]
    sums = {occ: dict.fromkeys(groups, 0.0) for occ in spec["occupations"]}
    used: set[str] = set()
    for template in spec["templates"]:
        at_start = template.startswith("{mask}")
        ids = {
            g: [(w, _candidate_id(tokenizer, w, at_start)) for w in words]
            for g, words in groups.items()
        }
        sentences = [
            template.format(mask=tokenizer.mask_token, occupation=occ)
            for occ in spec["occupations"]
        ]
        batch = tokenizer(sentences, return_tensors="pt", padding=True)
        with torch.no_grad():
            probs = model(**batch).logits.softmax(dim=-1)
        rows, cols = (batch["input_ids"] == tokenizer.mask_token_id).nonzero(as_tuple=True)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            occ = spec["occupations"][row]
            _add(sums[occ], used, ids, probs[row, col], len(spec["templates"]))
    return _report(spec, sums, used)


def _add(
    sums: dict[str, float],
    used: set[str],
    ids: dict[str, list[tuple[str, int | None]]],
    probs: Any,
    templates: int,
) -> None:
    """One template's probabilities of each group's words, averaged over the templates."""
    for group, pairs in ids.items():
        for word, token in pairs:
            if token is not None:
                sums[group] += float(probs[token]) / templates
                used.add(word)


def next_word_probe(model_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """A causal LM's version of the probe: the probability of each group's words as the next
    word after each template's opening (the text before ``{mask}``; templates that start with
    it cannot be asked of a model that reads left to right)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    openings = [t.split("{mask}")[0].rstrip() for t in spec["templates"] if "{mask}" in t]
    openings = [o for o in openings if o]
    if not openings:
        return {
            "kind": "none",
            "reason": "every template of the probe starts with its blank ({mask}), and a "
            "causal LM can only be asked for the word after some text",
        }
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    groups: dict[str, list[str]] = spec["groups"]
    sums = {occ: dict.fromkeys(groups, 0.0) for occ in spec["occupations"]}
    used: set[str] = set()
    ids = {
        g: [(w, _candidate_id(tokenizer, w, False)) for w in words] for g, words in groups.items()
    }
    for opening in openings:
        for occ in spec["occupations"]:
            batch = tokenizer(opening.format(occupation=occ), return_tensors="pt")
            with torch.no_grad():
                probs = model(**batch).logits[0, -1].float().softmax(dim=-1)
            _add(sums[occ], used, ids, probs, len(openings))
    return {**_report({**spec, "templates": openings}, sums, used), "position": "next word"}


def _report(
    spec: dict[str, Any], sums: dict[str, dict[str, float]], used: set[str]
) -> dict[str, Any]:
    groups = list(spec["groups"])
    missing = [w for words in spec["groups"].values() for w in words if w not in used]
    if not used:
        return {
            "kind": "none",
            "reason": f"none of the probe's words ({', '.join(missing)}) is a single token "
            "of this model's vocabulary",
        }
    rows: list[dict[str, Any]] = []
    for occ, probs in sums.items():
        total = sum(probs.values())
        share = probs[groups[0]] / total if total else None
        rows.append({"occupation": occ, **probs, f"{groups[0]}_share": share})
    shares: list[float] = [
        r[f"{groups[0]}_share"] for r in rows if r[f"{groups[0]}_share"] is not None
    ]
    return {
        "kind": "gendered-completions",
        "language": spec.get("language"),
        "groups": spec["groups"],
        "templates": spec["templates"],
        "rows": rows,
        "words_not_in_vocabulary": missing,
        "mean_share": sum(shares) / len(shares) if shares else None,
    }


def classification_slices(metrics: dict[str, Any], worst: int = 3) -> dict[str, Any]:
    """The classes and length buckets where the model does worst."""
    per_class = metrics.get("details", {}).get("per_class") or {}
    classes = sorted(per_class.items(), key=lambda kv: (kv[1].get("f1", 0.0), kv[0]))
    scored = ("accuracy", "f1", "rougeL", "bleu")
    metric = next((k for k in scored if k in metrics.get("metrics", {})), None)
    buckets = [_slice(b) for b in metrics.get("by_length") or [] if metric and metric in b]
    buckets.sort(key=lambda b: b[str(metric)])
    if not classes and not buckets:
        return {
            "kind": "none",
            "reason": "the evaluation has no classes or length slices to compare",
        }
    return {
        "kind": "worst-slices",
        "classes": [{"label": k, **v} for k, v in classes[:worst]],
        "length_metric": metric,
        "lengths": buckets[:worst],
    }


def _slice(bucket: dict[str, Any]) -> dict[str, Any]:
    """A length bucket with its name (``context 65-128 words``, ``1-16 tokens``)."""
    unit = "words" if "words" in bucket else "tokens"
    name = f"{bucket.get('part', '')} {bucket[unit]} {unit}".strip()
    return {**bucket, "slice": name}


def measure(
    run_dir: Path, task: str, language: str | None, probe_file: Path | None
) -> dict[str, Any]:
    """The bias section's measurements for a run (written to bias.json by the caller)."""
    if tasks.get(task).bias_probe == "generative":
        spec = load_probe(language, probe_file)
        return next_word_probe(RunDir(run_dir).model, spec) if spec else _no_probe(language)
    if tasks.get(task).bias_probe != "completions":
        from hubtool.core import rundir

        return classification_slices(rundir.read_json(RunDir(run_dir).metrics))
    spec = load_probe(language, probe_file)
    return gender_probe(RunDir(run_dir).model, spec) if spec else _no_probe(language)


def _no_probe(language: str | None) -> dict[str, Any]:
    return {
        "kind": "none",
        "reason": f"no gender probe ships for language {language or 'unknown'!r}; "
        "give one with card.bias_probe (see hubtool/cards/probes/en.yaml)",
    }
