"""Results by slice (the factors of Mitchell et al.'s model cards): the evaluated examples
grouped by the columns the user names (``slices``), by a language column or, where the texts
mix languages, by the language each is written in, and by what the task groups by itself
(the true label); each group scored from the task's per-example statistics
(``Task.example_stats``), with a 95 % bootstrap interval.

Groups are read from the split's rows before tokenization; predictions are traced back to
their rows through the ``row`` column the evaluation features carry (``number_rows``), since
evaluation batches are grouped by length, not in the split's order.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from itertools import pairwise
from typing import Any

import numpy as np

from hubtool.errors import UsageError
from hubtool.tasks import Predictions, Task

LANGUAGE_COLUMNS = ("language", "lang", "locale", "lang_code")
GUESSED = "language (guessed)"
MOST_VALUES = 12  # slices per factor; the rarest values beyond are pooled as "(other)"
RESAMPLES = 1000
VALUE_CHARS = 60
GUESS_ROWS = 20_000  # guessing languages text by text: at most this many rows
SHARE = 0.1  # a guessed language counts as mixed in when it holds this share of the rows


def group_values(ds: Any, named: tuple[str, ...], text_column: str | None) -> dict[str, list[str]]:
    """Per factor, each row's slice: the named columns, then a language column (or, with
    none, each text's guessed language where the split mixes languages)."""
    columns = list(ds.column_names)
    absent = [c for c in named if c not in columns]
    if absent:
        raise UsageError(
            f"slices: the evaluated split has no column {absent[0]!r}.",
            f"Its columns: {', '.join(columns)}.",
        )
    groups = {c: values_of(list(ds[c]), c) for c in named}
    if any(c in LANGUAGE_COLUMNS for c in named):
        return groups
    language = next((c for c in LANGUAGE_COLUMNS if c in columns), None)
    if language is not None:
        values = values_of(list(ds[language]), language)
        if len(set(values)) > 1:
            groups[language] = values
    elif text_column is not None and len(ds) <= GUESS_ROWS:
        guessed = guessed_languages(ds, text_column)
        if guessed is not None:
            groups[GUESSED] = guessed
    return groups


def values_of(values: list[Any], column: str) -> list[str]:
    """Each row's slice of one column: its value as text; numbers with many values cut into
    quartiles; beyond ``MOST_VALUES`` values, the rarest pooled as "(other)"."""
    if any(isinstance(v, (list, dict, tuple)) for v in values):
        raise UsageError(
            f"slices: column {column!r} holds lists or records; a slice needs one value per row.",
            "Name a column of categories, words or numbers.",
        )
    numbers = [v for v in values if _is_number(v)]
    present = [v for v in values if not _missing(v)]
    texts = [_text(v) for v in values]
    if numbers and len(numbers) == len(present) and len(set(texts)) > MOST_VALUES:
        return _quartiles(values, numbers)
    counts = Counter(texts)
    if len(counts) <= MOST_VALUES:
        return texts
    kept = {value for value, _ in counts.most_common(MOST_VALUES - 1)}
    return [t if t in kept else "(other)" for t in texts]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not _missing(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    if _missing(value):
        return "(missing)"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = " ".join(str(value).split())
    if not text:
        return "(empty)"
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _quartiles(values: list[Any], numbers: list[float]) -> list[str]:
    quartiles = np.quantile(np.asarray(numbers, dtype=float), [0.25, 0.5, 0.75])
    edges = sorted({float(e) for e in quartiles})
    names = [f"≤ {edges[0]:g}"]
    names += [f"{low:g} – {high:g}" for low, high in pairwise(edges)]
    names.append(f"> {edges[-1]:g}")

    def name(value: Any) -> str:
        if not _is_number(value):
            return "(missing)"
        return names[sum(float(value) > e for e in edges)]

    return [name(v) for v in values]


def guessed_languages(ds: Any, column: str) -> list[str] | None:
    """Each text's language by its function words, when at least two languages each hold a
    tenth of the rows (and ten rows); None for a split in one language."""
    from hubtool.core.languages import guess_language
    from hubtool.tasks.base import texts_of

    guesses = [guess_language([_joined(t)], minimum=2) for t in texts_of(ds, column)]
    counts = Counter(g for g in guesses if g is not None)
    floor = max(10, SHARE * len(guesses))
    mixed = {code for code, n in counts.items() if n >= floor}
    if len(mixed) < 2:
        return None
    return [g if g in mixed else ("other" if g else "undetermined") for g in guesses]


def _joined(value: Any) -> str:
    if isinstance(value, list):  # words (token tasks), or messages (chat)
        return " ".join(v.get("content", "") if isinstance(v, dict) else str(v) for v in value)
    return str(value)


def number_rows(task: Task, raw: Any, features: Any, cols: Any) -> Any:
    """The evaluation features with a ``row`` column: the split row each came from (left
    without one where predictions cannot be traced to rows: blocks of joined text)."""
    rows = task.row_numbers(raw, features, cols)
    if rows is None:
        return features
    return features.add_column("row", list(rows))


def refuse_untraceable(task: Task, features: Any, named: tuple[str, ...]) -> None:
    """Named slices on a task evaluated on blocks of joined text: refused before training."""
    if named and "row" not in features.column_names:
        raise UsageError(
            f"slices: {task.name} on this data is evaluated on blocks of joined text, not on "
            f"rows, so its results cannot be broken down by {named[0]!r}.",
            "Drop the slices setting, or give the data as one example per row (prompt and "
            "completion, or messages).",
        )


def by_slice(
    task: Task,
    p: Predictions,
    label_names: list[str] | None,
    groups: dict[str, list[str]] | None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The task's per-example metrics on every slice of every factor, with 95 % intervals
    (``resamples`` bootstrap draws within each slice); {} when there is nothing to slice."""
    own = task.slice_groups(p, label_names)
    if not own and not (groups and p.rows):
        return {}
    stats = task.example_stats(p, label_names)
    if not stats:
        return {}
    size = len(next(iter(stats.values()))[0])
    factors = {name: v for name, v in own.items() if len(v) == size and len(set(v)) > 1}
    if groups and len(p.rows) == size:  # the rows' groups, in the predictions' order
        factors |= {name: [values[r] for r in p.rows] for name, values in groups.items()}
    if not factors:
        return {}
    rng = np.random.default_rng(seed)
    return {
        "level": 0.95,
        "resamples": resamples,
        "metrics": list(stats),
        "all": _scored(stats, np.arange(size), resamples, rng),
        "factors": [
            {
                "name": name,
                "guessed": name == GUESSED,
                "slices": [
                    {"value": value, **_scored(stats, idx, resamples, rng)}
                    for value, idx in _slices(values)
                ],
            }
            for name, values in factors.items()
        ],
    }


RANGE = re.compile(r"(≤ |> ?)?(-?\d+(?:\.\d+)?)(?: ?[–-] ?-?\d+(?:\.\d+)?)?")


def _slices(values: list[str]) -> list[tuple[str, np.ndarray]]:
    """(value, indices): ranges (quartiles, length buckets) in their order, other values
    the largest slice first, "(other)" and "(missing)" last."""
    counts = Counter(values)
    order = sorted(counts, key=lambda v: (v in ("(other)", "(missing)"), -counts[v], v))
    starts = {v: _range_start(v) for v in counts if v != "(missing)"}
    if all(s is not None for s in starts.values()):
        order = sorted(counts, key=lambda v: (v == "(missing)", starts.get(v) or 0.0))
    array = np.asarray(values)
    return [(value, np.flatnonzero(array == value)) for value in order]


def _range_start(name: str) -> float | None:
    """Where a range's name starts ("≤ 3": -inf, "4 – 9": 4, "> 9" after "4 – 9"); None
    for a name that is not a range."""
    m = RANGE.fullmatch(name)
    if m is None:
        return None
    if m.group(1) == "≤ ":
        return -math.inf
    return float(m.group(2)) + (0.5 if m.group(1) else 0.0)


def _scored(
    stats: dict[str, tuple[np.ndarray, Any]],
    idx: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Examples, each metric on them, and its 95 % percentile interval over resamples."""
    metrics, intervals = {}, {}
    for name, (counts, score) in stats.items():
        chosen = counts[idx]
        metrics[name] = float(score(chosen.sum(axis=0)))
        draws: list[float] = []
        for start in range(0, resamples, 100):  # bounded memory: 100 draws at a time
            picks = rng.integers(0, len(idx), (min(100, resamples - start), len(idx)))
            draws += [float(score(s)) for s in chosen[picks].sum(axis=1)]
        if draws:
            intervals[name] = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]
    return {"examples": len(idx), "metrics": metrics, "intervals": intervals}


class WithRows:
    """An evaluation collator that keeps each feature's ``row`` out of the model's inputs
    and hands the batch's rows on as ``batch["row"]`` (``evaluation.predict`` takes them
    out before the task sees the batch)."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        import torch

        if not features or "row" not in features[0]:
            return self.collate(features)
        rows = [f["row"] for f in features]
        batch = self.collate([{k: v for k, v in f.items() if k != "row"} for f in features])
        batch["row"] = torch.tensor(rows, dtype=torch.long)
        return batch


class RowsTaken:
    """A prepared evaluation loader whose batches lose their ``row`` entry, gathered from
    every process into ``out.rows`` in the order the predictions are gathered."""

    def __init__(self, loader: Any, accelerator: Any, out: Predictions) -> None:
        self.loader, self.accelerator, self.out = loader, accelerator, out

    def __iter__(self) -> Any:
        for batch in self.loader:
            rows = batch.pop("row", None)
            if rows is not None:
                self.out.rows += self.accelerator.gather_for_metrics(rows).tolist()
            yield batch

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # dataset, batch_size…: the loader's
        if name == "loader":  # not set yet (a copy being made): no endless recursion
            raise AttributeError(name)
        return getattr(self.loader, name)
