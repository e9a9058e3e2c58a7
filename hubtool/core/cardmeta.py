"""A model card's metadata as clients and the server both read it: the YAML front matter
(parsed with bounds), the model-index rows, list-or-string fields, and parameter counts from a
safetensors header."""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import yaml

from hubtool.core import boundedyaml

FRONT_MATTER = re.compile(r"\A\ufeff?\s*---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*$", re.S | re.M)


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
