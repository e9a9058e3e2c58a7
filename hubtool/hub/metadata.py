"""What the Hub derives from a repository's files: card data, tags, pipeline tag, library,
config summary and parameter counts (spec §3 and §4.1)."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from hubtool.core import boundedyaml
from hubtool.core.architectures import head_of

FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*$", re.S | re.M)
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


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(YAML text or None, Markdown body) of a card."""
    m = FRONT_MATTER.match(text)
    if not m:
        return None, text
    return m.group(1), text[m.end() :].lstrip("\r\n")


def card_data(readme: str | None) -> dict[str, Any] | None:
    """The card's front matter as a mapping, or None when absent or not a valid mapping."""
    if readme is None:
        return None
    raw, _ = split_front_matter(readme)
    if raw is None:
        return None
    try:
        data = boundedyaml.safe_load(raw)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def unsafe_card(readme: str | None) -> str | None:
    """Why a card's front matter cannot be parsed within bounds (an alias bomb…), or None.

    Plain invalid YAML is not "unsafe": ``card_data`` just returns None for it.
    """
    raw = split_front_matter(readme)[0] if readme is not None else None
    if raw is None:
        return None
    try:
        boundedyaml.safe_load(raw)
    except boundedyaml.UnsafeYAML as exc:
        return str(exc)
    except yaml.YAMLError:
        return None
    return None


def model_index_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows of a card's model-index: task, dataset, split, metric (name and type), value."""
    rows = []
    for entry in card.get("model-index") or []:
        for result in (entry.get("results") or []) if isinstance(entry, dict) else []:
            if not isinstance(result, dict):
                continue
            task, data = result.get("task") or {}, result.get("dataset") or {}
            for metric in result.get("metrics") or []:
                if isinstance(metric, dict):
                    rows.append(
                        {
                            "task": task.get("type"),
                            "task_name": task.get("name") or task.get("type"),
                            "dataset": data.get("name") or data.get("type"),
                            "dataset_id": data.get("type"),
                            "config": data.get("config"),
                            "split": data.get("split"),
                            "metric": metric.get("name") or metric.get("type"),
                            "type": str(metric.get("type")),
                            "value": metric.get("value"),
                        }
                    )
    return rows


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def safetensors_parameters(header: bytes) -> dict[str, int]:
    """Parameter count per dtype from a safetensors header blob (8-byte length + JSON)."""
    if len(header) < 8:
        return {}
    (length,) = struct.unpack("<Q", header[:8])
    try:
        meta = json.loads(header[8 : 8 + length])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(meta, dict):
        return {}
    counts: dict[str, int] = {}
    for name, info in meta.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        shape, dtype = info.get("shape", []), str(info.get("dtype", "F32"))
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape
        ):
            continue  # not a tensor this header can count
        n = 1
        for dim in shape:
            n *= dim
        counts[dtype] = counts.get(dtype, 0) + n
    return counts


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
