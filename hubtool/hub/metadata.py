"""What the Hub derives from a repository's files: card data, tags, pipeline tag, library,
config summary and parameter counts (spec §3 and §4.1)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from hubtool.core.architectures import head_of
from hubtool.core.cardmeta import (  # noqa: F401  (part of this module's interface)
    FRONT_MATTER,
    as_list,
    card_data,
    model_index_rows,
    safetensors_parameters,
    split_front_matter,
    unsafe_card,
)

_ARXIV = re.compile(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5})", re.I)

WEIGHT_FORMATS = (
    (".safetensors", "safetensors"),
    (".bin", "pytorch"),
    (".pt", "pytorch"),
    (".pth", "pytorch"),
    (".h5", "tf"),
    (".msgpack", "jax"),
    (".onnx", "onnx"),
    (".gguf", "gguf"),
)
DATA_FORMATS = (
    (".parquet", "parquet"),
    (".csv", "csv"),
    (".json", "json"),
    (".jsonl", "json"),
    (".arrow", "arrow"),
    (".txt", "text"),
)


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
    return list(seen)


def model_metadata(
    paths: list[str],
    readme: str | None,
    config: dict[str, Any] | None,
    params: dict[str, int],
    tokenizer_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The index fields of a model repo, derived as the Hub derives them."""
    card = card_data(readme) or {}
    architectures = as_list((config or {}).get("architectures"))
    model_type = (config or {}).get("model_type")
    heads = [h for h in (head_of(a) for a in architectures) if h]
    pipeline_tag = card.get("pipeline_tag") or (heads[0][0] if heads else None)
    library = card.get("library_name") or ("transformers" if config is not None else None)
    formats = _dedupe(fmt for p in paths for ext, fmt in WEIGHT_FORMATS if p.endswith(ext))
    tags = [library or "", *formats, str(model_type or ""), str(pipeline_tag or "")]
    tags += as_list(card.get("tags")) + _card_reference_tags(card, readme, language_prefix="")
    if library == "transformers":
        tags += ["endpoints_compatible"]
    meta: dict[str, Any] = {"tags": [*_dedupe(tags), "region:us"], "siblings": paths}
    if card:
        meta["cardData"] = card
    if config is not None:
        meta["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
        meta["config"]["tokenizer_config"] = tokenizer_summary(tokenizer_config)
        if heads:
            meta["transformersInfo"] = {
                "auto_model": heads[0][1],
                "pipeline_tag": heads[0][0],
                "processor": "AutoTokenizer",
            }
    mask = _token_text((tokenizer_config or {}).get("mask_token"))
    if mask:
        meta["mask_token"] = mask
    widgets = widget_data(card, pipeline_tag, mask)
    if widgets is not None:
        meta["widgetData"] = widgets
    if params:
        meta["safetensors"] = {"parameters": params, "total": sum(params.values())}
    return {
        "meta": meta,
        "pipeline_tag": pipeline_tag,
        "library_name": library,
        "num_parameters": sum(params.values()) if params else None,
    }


def dataset_metadata(paths: list[str], readme: str | None) -> dict[str, Any]:
    card = card_data(readme) or {}
    formats = _dedupe(
        fmt for p in paths for ext, fmt in DATA_FORMATS if p.endswith(ext) and not p.startswith(".")
    )
    tags = [f"task_categories:{t}" for t in as_list(card.get("task_categories"))]
    tags += [f"task_ids:{t}" for t in as_list(card.get("task_ids"))]
    tags += [f"size_categories:{t}" for t in as_list(card.get("size_categories"))]
    tags += as_list(card.get("tags"))
    tags += _card_reference_tags(card, readme, language_prefix="language:")
    tags += [f"format:{f}" for f in formats]
    if formats:
        tags += ["library:datasets"]
    meta: dict[str, Any] = {"tags": [*_dedupe(tags), "region:us"], "siblings": paths}
    if card:
        meta["cardData"] = card
    return {"meta": meta, "pipeline_tag": None, "library_name": None, "num_parameters": None}


def _card_reference_tags(
    card: dict[str, Any], readme: str | None, language_prefix: str
) -> list[str]:
    tags = [f"{language_prefix}{lang}" for lang in as_list(card.get("language"))]
    tags += [f"dataset:{d}" for d in as_list(card.get("datasets"))]
    if readme:
        tags += [f"arxiv:{a}" for a in _ARXIV.findall(split_front_matter(readme)[1])]
    tags += [f"license:{lic}" for lic in as_list(card.get("license"))]
    relation = card.get("base_model_relation")
    for base in as_list(card.get("base_model")):
        tags.append(f"base_model:{base}")
        if relation in ("finetune", "adapter", "quantized", "merge"):
            tags.append(f"base_model:{relation}:{base}")
    if card.get("model-index"):
        tags.append("model-index")
    return tags


def read_repo_files(
    paths: list[str], read: Callable[[str], bytes | None]
) -> tuple[str | None, dict[str, Any] | None, dict[str, Any] | None]:
    """(README text, parsed config.json, parsed tokenizer_config.json) via ``read(path)``."""
    readme = read("README.md") if "README.md" in paths else None
    parsed = []
    for name in ("config.json", "tokenizer_config.json"):
        raw = read(name) if name in paths else None
        try:
            loaded = json.loads(raw) if raw is not None else None
        except (ValueError, RecursionError):
            loaded = None
        parsed.append(loaded if isinstance(loaded, dict) else None)
    text = readme.decode("utf-8", errors="replace") if readme is not None else None
    return text, parsed[0], parsed[1]


SPECIAL_TOKENS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
DEFAULT_FILL_MASK_WIDGETS = {
    "en": ["Paris is the {mask} of France.", "The goal of life is {mask}."],
    "fr": ["Paris est la {mask} de la France.", "Le but de la vie est {mask}."],
}
# The Hub's default widget inputs for tasks whose card names none (English).
DEFAULT_WIDGETS: dict[str, list[dict[str, Any]]] = {
    "text-classification": [{"text": "I like you. I love you"}],
    "token-classification": [{"text": "My name is Wolfgang and I live in Berlin"}],
    "question-answering": [
        {"text": "Where do I live?", "context": "My name is Wolfgang and I live in Berlin"}
    ],
    "text-generation": [{"text": "My name is Julien and I like to"}],
    "feature-extraction": [{"text": "Paris is the capital of France."}],
}


def _token_text(token: Any) -> str | None:
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


def tokenizer_summary(tokenizer_config: dict[str, Any] | None) -> dict[str, Any]:
    """The special tokens of a tokenizer config, as the Hub reports them under ``config``."""
    config = tokenizer_config or {}
    return {k: config[k] for k in SPECIAL_TOKENS if k in config}


def widget_data(
    card: dict[str, Any], pipeline_tag: str | None, mask: str | None
) -> list[dict[str, Any]] | None:
    """The card's ``widget`` examples, else the Hub's default fill-mask examples."""
    widget = card.get("widget")
    if isinstance(widget, list):
        return [w for w in widget if isinstance(w, dict)]
    if pipeline_tag == "fill-mask" and mask:
        langs = as_list(card.get("language")) or ["en"]
        examples = DEFAULT_FILL_MASK_WIDGETS.get(langs[0], DEFAULT_FILL_MASK_WIDGETS["en"])
        return [{"text": e.format(mask=mask)} for e in examples]
    return DEFAULT_WIDGETS.get(pipeline_tag or "")
