"""``prepare_data``: the whole data stage of a fine-tuning run. The task (``hubtool.tasks``)
says which columns it reads, checks the rows and tokenizes them; this module sequences it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hubtool import tasks
from hubtool.core.hubclient import HubSettings
from hubtool.errors import UsageError
from hubtool.tasks.base import holds_lists, texts_of
from hubtool.tasks.classification import LABEL_COLUMNS
from hubtool.training import data, showcase, slicing
from hubtool.training.config import FinetuneConfig


def choose_task(columns: list[str], cfg: FinetuneConfig) -> tasks.Task:
    """The task asked for, or (``auto``) the first that claims these columns (plain text is
    causal-LM data for a decoder, masked-LM data otherwise)."""
    if cfg.task != "auto":
        return tasks.get(cfg.task)
    return tasks.infer(columns, cfg.label_column, _family(cfg.model))


def _family(model: str) -> str | None:
    """encoder, seq2seq, decoder or None, from the checkpoint's config."""
    from transformers import AutoConfig

    from hubtool.core.architectures import family_of, heads_of

    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError):  # loading the model says why
        return None
    return family_of(config.model_type, heads_of(list(config.architectures or [])), None)


def prepare_data(
    cfg: FinetuneConfig, tokenizer: Any, hub: HubSettings | None = None
) -> data.PreparedData:
    """Load, check and tokenize the dataset; raise UsageError on anything unusable.

    ``cfg.max_length`` must be resolved (``config.with_max_length``) before this runs.
    """
    raw, source = data.load_raw(cfg, hub)
    first = raw[cfg.train_split] if cfg.train_split in raw else next(iter(raw.values()))
    binary: list[str] = []
    if cfg.task in ("auto", "text-classification"):  # several 0/1 columns: multi-label
        binary = data.binary_columns(first, cfg.label_column, LABEL_COLUMNS)
    if binary:
        raw = type(raw)({s: data.fold_binary_columns(d, binary) for s, d in raw.items()})
        cfg = replace(cfg, label_column=data.FOLDED)
        first = raw[cfg.train_split] if cfg.train_split in raw else next(iter(raw.values()))
    task = choose_task(list(first.column_names), cfg)
    cols = task.columns(list(first.column_names), cfg)
    used = {cfg.train_split, cfg.validation_split, *data.VALIDATION_NAMES}
    for split, ds in ((s, d) for s, d in raw.items() if s in used):  # before any carving:
        if len(ds) == 0:  # so that row numbers are the file's
            raise UsageError(f"The {split} split is empty.")
        task.check_rows(ds, split, cols)
    multi = task.labelled and bool(cols.label) and not task.per_token
    multi = multi and holds_lists(first, str(cols.label))
    train, validation, how = data.choose_splits(raw, cfg, cols.label)
    rows = validation  # the rows as given: slices group by their columns
    groups = slicing.group_values(rows, cfg.slice_columns, cols.text)
    names = None
    stats: dict[str, Any] = {"train_rows": len(train), "validation_rows": len(validation)}
    stats["language_guess"] = _language_of(train, cols.text)
    if binary:
        stats["label_columns"] = binary  # the 0/1 columns the label lists were made of
    classes = cols.label if task.labelled else None  # spans, texts: the task reads them
    if classes is not None and multi:
        names, train, validation = _multi_hot(train, validation, classes, stats)
    elif classes is not None:
        names = data.label_names_for(train, validation, classes, task.per_token)
        train = data.encode_labels(train, classes, names, task.per_token)
        validation = data.encode_labels(validation, classes, names, task.per_token)
        stats["label_distribution"] = {
            "train": data.label_distribution(train, names, task.per_token),
            "validation": data.label_distribution(validation, names, task.per_token),
        }
    stats["preparation"] = task.preparation(cfg, train, cols, tokenizer)
    stats["samples"] = showcase.sample_rows(validation, cols, names)
    stats["example"] = showcase.data_example(task, validation, cols, cfg)
    train, train_cut = task.tokenize(train, tokenizer, cfg, cols)
    validation, val_cut = task.tokenize_eval(validation, tokenizer, cfg, cols)
    validation = slicing.number_rows(task, rows, validation, cols)
    slicing.refuse_untraceable(task, validation, cfg.slice_columns)
    stats["truncated"] = {"train": train_cut, "validation": val_cut}
    stats["token_lengths"] = {
        "train": showcase.token_lengths(train),
        "validation": showcase.token_lengths(validation),
    }
    source = {**source, "split": how["split"], "validation": how}
    prepared = data.PreparedData(
        task.name, train, validation, names, cols.text, cols.pair, cols.label, source, stats, multi
    )
    prepared.groups = groups if "row" in validation.column_names else {}
    return prepared


def _multi_hot(
    train: Any, validation: Any, column: str, stats: dict[str, Any]
) -> tuple[list[str], Any, Any]:
    """Multi-label: the label set, both splits as 0/1 per label, their counts and pairs."""
    names = data.label_names_for(train, validation, column, True)
    train = data.encode_multi_hot(train, column, names)
    validation = data.encode_multi_hot(validation, column, names)
    stats["label_distribution"] = {
        "train": data.multi_hot_distribution(train, names),
        "validation": data.multi_hot_distribution(validation, names),
    }
    stats["label_co_occurrence"] = data.co_occurrence(train, names)
    return names, train, validation


def _language_of(ds: Any, column: str) -> str | None:
    """The language of the first few hundred texts (for the card when nobody says)."""
    from hubtool.core.languages import guess_language

    sample = texts_of(ds.select(range(min(300, len(ds)))), column)
    return guess_language([_text_of(t) for t in sample])


def _text_of(value: Any) -> str:
    """A row's text: words joined (token tasks), messages' contents joined (chat)."""
    if isinstance(value, list):
        return " ".join(v.get("content", "") if isinstance(v, dict) else str(v) for v in value)
    return str(value)
