"""Data stage: load a Hub or local dataset, choose the splits and map labels to indices (the
task says which columns it reads; see ``hubtool.tasks``)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubtool.core.hubclient import HubSettings, revision_of
from hubtool.errors import UsageError
from hubtool.training.config import FinetuneConfig

VALIDATION_NAMES = ("validation", "valid", "dev", "val")


@dataclass
class PreparedData:
    """Tokenized splits plus everything the card and run.json report about the data."""

    task: str
    train: Any
    validation: Any
    label_names: list[str] | None
    text_column: str | None
    text_pair_column: str | None
    label_column: str | None
    source: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    multi_label: bool = False  # a label column of lists: several labels per example
    # per factor (a column the card breaks results down by), each validation row's slice
    groups: dict[str, list[str]] = field(default_factory=dict)


# -- loading ----------------------------------------------------------------------------------
def load_raw(cfg: FinetuneConfig, hub: HubSettings | None = None) -> tuple[Any, dict[str, Any]]:
    """(DatasetDict, source description) for a Hub id or a local file or folder."""
    import datasets

    path = Path(cfg.dataset)
    ds, source = _load_local(path, cfg.dataset) if path.exists() else _load_hub(cfg, hub)
    if not isinstance(ds, datasets.DatasetDict):
        ds = datasets.DatasetDict({"train": ds})
    return ds, source


def _load_local(path: Path, shown: str) -> tuple[Any, dict[str, Any]]:
    """A local file or folder, its splits found as the Hub finds a repository's (datafiles)."""
    from hubtool.training import datafiles

    files = datafiles.resolve(path, shown)
    revision = datafiles.fingerprint(files)  # also refuses empty and non-UTF-8 text files
    ds = datafiles.load(files)
    source = {"id": None, "path": str(path.resolve()), "config": None, "revision": revision}
    return ds, source


def _load_hub(cfg: FinetuneConfig, hub: HubSettings | None) -> tuple[Any, dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(cfg.dataset, cfg.dataset_config, revision=cfg.dataset_revision)
    # DatasetNotFoundError is a FileNotFoundError: it must be caught first
    except datasets.exceptions.DatasetNotFoundError as exc:
        raise UsageError(
            f"Dataset {cfg.dataset!r} was not found: {exc}",
            "Check the id and HF_ENDPOINT, or give a local path.",
        ) from None
    except ConnectionError as exc:  # the endpoint unreachable, or HF_HUB_OFFLINE set
        raise UsageError(
            f"Dataset {cfg.dataset!r} cannot be fetched: {str(exc).splitlines()[0][:300]}",
            "Check the id and HF_ENDPOINT; with HF_HUB_OFFLINE=1 only local paths and datasets "
            "already in the cache load.",
        ) from None
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetGenerationError) as exc:
        empty = re.search(r'Instruction "([^"]+)" corresponds to no data', str(exc))
        if empty:
            raise UsageError(
                f"The {empty.group(1)} split is empty.", "Add rows to it, or remove its file."
            ) from None
        raise UsageError(
            f"Cannot load dataset {cfg.dataset!r}: {exc}",
            "Give a Hub dataset id, or a csv/tsv/json/jsonl/parquet/txt file or folder.",
        ) from None
    source = {
        "id": cfg.dataset,
        "path": None,
        "config": cfg.dataset_config,
        "revision": revision_of(hub, cfg.dataset, "dataset", cfg.dataset_revision),
    }
    return ds, source


# -- splits ------------------------------------------------------------------------------------
def choose_splits(
    ds: Any, cfg: FinetuneConfig, label_column: str | None
) -> tuple[Any, Any, dict[str, Any]]:
    """(train, validation, how validation was chosen)."""
    if cfg.train_split not in ds:
        raise UsageError(
            f"The dataset has no split {cfg.train_split!r}.",
            f"Splits: {', '.join(ds)}. Use --train-split.",
        )
    train = ds[cfg.train_split]
    if cfg.validation_split != "auto":
        if cfg.validation_split not in ds:
            raise UsageError(
                f"The dataset has no split {cfg.validation_split!r}.", f"Splits: {', '.join(ds)}."
            )
        return train, ds[cfg.validation_split], {"split": cfg.validation_split}
    for name in VALIDATION_NAMES:
        if name in ds and name != cfg.train_split:
            return train, ds[name], {"split": name}
    if len(train) < 2:
        raise UsageError(f"Split {cfg.train_split!r} has {len(train)} rows: too few to train.")
    stratify = label_column if label_column and _is_class_label(train, label_column) else None
    parts = train.train_test_split(
        test_size=cfg.validation_share, seed=cfg.seed, stratify_by_column=stratify
    )
    return (
        parts["train"],
        parts["test"],
        {
            "split": f"{cfg.train_split} (carved)",
            "carved_from": cfg.train_split,
            "share": cfg.validation_share,
            "seed": cfg.seed,
            "stratified": stratify is not None,
        },
    )


def _is_class_label(ds: Any, column: str) -> bool:
    import datasets

    return isinstance(ds.features.get(column), datasets.ClassLabel)


# -- labels -------------------------------------------------------------------------------------
def label_names_for(train: Any, validation: Any, column: str, per_token: bool) -> list[str]:
    """The label set, from ClassLabel names or the values seen in train."""
    import datasets

    values = _flat(train[column], per_token)
    if any(v is None for v in values):
        raise UsageError(f"The label column {column!r} has empty values.")
    present = {str(v) for v in values}
    if len(present) < 2:
        raise UsageError(
            f"The label column {column!r} has a single value ({next(iter(present), 'none')})"
            " in the training split: a classifier needs at least two classes.",
            "Check --label-column, or the data: every row has the same label.",
        )
    inner = _inner_feature(train.features[column])
    if isinstance(inner, datasets.ClassLabel):
        return list(inner.names)
    names = sorted(present, key=_natural)
    unseen = sorted(
        {str(v) for v in _flat(validation[column], per_token)} - set(names), key=_natural
    )
    if unseen:
        raise UsageError(
            f"Validation labels outside the training label set: {', '.join(unseen[:10])}.",
            f"Training labels: {', '.join(names[:20])}.",
        )
    return names


def _inner_feature(feature: Any) -> Any:
    """The element feature of a sequence column (the column's own feature otherwise)."""
    import datasets

    if isinstance(feature, datasets.Sequence):
        return feature.feature
    if isinstance(feature, list):
        return feature[0]
    return feature


def _flat(values: list[Any], per_token: bool) -> list[Any]:
    return [v for row in values for v in row] if per_token else values


def _natural(value: str) -> tuple[int, Any]:
    return (0, int(value)) if value.lstrip("-").isdigit() else (1, value)


def encode_labels(
    ds: Any, column: str, names: list[str], per_token: bool, label_set: str = "training"
) -> Any:
    """Labels as indices into ``names`` in a ``labels`` column.

    ClassLabel ids are read through their own names, so a data set whose label order differs
    from ``names`` (a model's labels, say) is still mapped correctly; a value outside
    ``names`` is a UsageError naming the ``label_set``.
    """
    import datasets

    inner = _inner_feature(ds.features[column])
    own = inner.names if isinstance(inner, datasets.ClassLabel) else None

    def name(v: Any) -> str:
        return str(own[v]) if own is not None else str(v)

    unknown = sorted({name(v) for v in _flat(ds[column], per_token)} - set(names), key=_natural)
    if unknown:
        raise UsageError(
            f"Labels outside the {label_set} label set: {', '.join(unknown[:10])}.",
            f"Known labels: {', '.join(names[:20])}.",
        )
    index = {n: i for i, n in enumerate(names)}

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = batch[column]
        if per_token:
            return {"labels": [[index[name(v)] for v in row] for row in rows]}
        return {"labels": [index[name(v)] for v in rows]}

    return ds.map(encode, batched=True, desc="Encoding labels")


def label_distribution(ds: Any, names: list[str], per_token: bool) -> dict[str, int]:
    counts = Counter(_flat(ds["labels"], per_token))
    return {names[i]: counts.get(i, 0) for i in range(len(names))}


# -- multi-label ----------------------------------------------------------------------------
def encode_multi_hot(ds: Any, column: str, names: list[str], label_set: str = "training") -> Any:
    """Label lists as 0/1 floats per label, in ``names`` order, in a ``labels`` column."""
    indexed = encode_labels(ds, column, names, True, label_set)
    n = len(names)

    def hot(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = [set(row) for row in batch["labels"]]
        return {"multi_hot": [[1.0 if i in row else 0.0 for i in range(n)] for row in rows]}

    hot_ds = indexed.map(hot, batched=True, remove_columns=["labels"], desc="Encoding label lists")
    return hot_ds.rename_column("multi_hot", "labels")  # floats: BCE needs them so


def multi_hot_distribution(ds: Any, names: list[str]) -> dict[str, int]:
    import numpy as np

    counts = np.asarray(ds["labels"], dtype=float).sum(axis=0) if len(ds) else np.zeros(len(names))
    return {name: int(counts[i]) for i, name in enumerate(names)}


def co_occurrence(ds: Any, names: list[str], top: int = 10) -> list[dict[str, Any]]:
    """The label pairs found together most often in training examples."""
    pairs: Counter[tuple[int, int]] = Counter()
    for row in ds["labels"]:
        on = [i for i, v in enumerate(row) if v]
        pairs.update((a, b) for k, a in enumerate(on) for b in on[k + 1 :])
    return [{"labels": [names[a], names[b]], "examples": n} for (a, b), n in pairs.most_common(top)]


FOLDED = "labels_from_columns"  # the label list made from several 0/1 columns


def binary_columns(ds: Any, given: str | None, reserved: tuple[str, ...]) -> list[str]:
    """The 0/1 columns that are a multi-label example's labels: those named in
    ``--label-column a,b,c``, or (none named, no usual label column) every column that holds
    only 0 and 1 (ints or booleans) when there are at least two."""
    import datasets

    if given and "," in given:
        named = [c.strip() for c in given.split(",") if c.strip()]
        absent = [c for c in named if c not in ds.column_names]
        if absent:
            raise UsageError(
                f"The label columns {', '.join(map(repr, absent))} do not exist.",
                f"Columns: {', '.join(ds.column_names)}.",
            )
        for column in named:
            _check_binary(ds, column)
        return named
    if given or any(c in ds.column_names for c in reserved):
        return []
    found = []
    for column, feature in ds.features.items():
        whole = isinstance(feature, datasets.Value) and (
            feature.dtype == "bool" or feature.dtype.startswith(("int", "uint"))
        )
        if whole and set(ds.unique(column)) <= {0, 1}:
            found.append(column)
    return found if len(found) >= 2 else []


def _check_binary(ds: Any, column: str) -> None:
    for i, value in enumerate(ds[column]):
        if isinstance(value, str) or value not in (0, 1):  # 0, 1, True, False (and 0.0, 1.0)
            raise UsageError(
                f"Row {i} has {value!r:.40} in the label column {column!r}: a label column of "
                "a multi-label set holds 0 or 1.",
                "Give 0/1 (or true/false) in every label column.",
            )


def fold_binary_columns(ds: Any, columns: list[str]) -> Any:
    """Several 0/1 columns as one column of label lists (``FOLDED``), in column order."""
    import datasets

    def fold(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = zip(*(batch[c] for c in columns), strict=True)
        return {FOLDED: [[i for i, v in enumerate(row) if v] for row in rows]}

    features = ds.features.copy()
    features[FOLDED] = datasets.Sequence(datasets.ClassLabel(names=columns))
    for column in columns:
        del features[column]
    return ds.map(fold, batched=True, remove_columns=columns, features=features)
