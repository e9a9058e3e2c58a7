"""What the card shows of the data: the tokens per example of each split, a few validation
rows as the user's files have them, and the widget example taken from the validation data."""

from __future__ import annotations

from typing import Any

from hubtool.tasks.base import Columns, Task, texts_of

SAMPLE_ROWS = 3
SHOWN_CHARS = 300  # per value: a row is read, not studied


def token_lengths(ds: Any) -> dict[str, int] | None:
    """min, median, p95 and max tokens per model example (after truncation)."""
    import numpy as np

    if "length" in ds.column_names:
        values = np.asarray(ds["length"])
    elif "input_ids" in ds.column_names:
        values = np.asarray([len(x) for x in ds["input_ids"]])
    else:
        return None
    if values.size == 0:
        return None
    return {
        "min": int(values.min()),
        "median": int(np.median(values)),
        "p95": int(np.percentile(values, 95)),
        "max": int(values.max()),
    }


def sample_rows(ds: Any, cols: Columns, names: list[str] | None) -> list[dict[str, str]]:
    """The first validation rows, one display string per column the task reads (label ids
    shown as their names)."""
    shown = [c for c in (cols.text, cols.pair, cols.label) if c]
    rows = ds.select(range(min(SAMPLE_ROWS, len(ds))))
    table = {c: texts_of(rows, c) for c in shown}
    return [
        {c: _display(table[c][i], names if c == cols.label else None) for c in shown}
        for i in range(len(rows))
    ]


def data_example(task: Task, ds: Any, cols: Columns, cfg: Any) -> Any:
    """The widget example from the first validation row the task can make one of (None:
    the task's own example stays)."""
    rows = ds.select(range(min(20, len(ds))))
    for row in rows:
        example = task.data_example(row, cols, cfg)
        if example:
            return example
    return None


def _display(value: Any, names: list[str] | None) -> str:
    if names is not None:
        value = _named(value, names)
    if isinstance(value, dict) and "role" not in value:  # QA answers, translation pairs
        value = "; ".join(f"{k}: {_display(v, None)}" for k, v in value.items())
    elif isinstance(value, list):
        value = " ".join(
            f"{v.get('role', '')}: {v.get('content', '')}" if isinstance(v, dict) else str(v)
            for v in value
        )
    text = " ".join(str(value).split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _named(value: Any, names: list[str]) -> Any:
    if isinstance(value, list):  # per-token tags, or a multi-hot row
        if value and all(v in (0, 1, 0.0, 1.0) for v in value) and len(value) == len(names):
            return ", ".join(n for n, v in zip(names, value, strict=True) if v) or "(none)"
        return [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in value]
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return value
