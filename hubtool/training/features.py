"""Tokenization per task (batched ``map``, cached by datasets) and ``prepare_data``, which runs
the whole data stage for a fine-tuning run."""

from __future__ import annotations

from typing import Any

from hubtool.errors import UsageError
from hubtool.training import data
from hubtool.training.config import FinetuneConfig


def prepare_data(cfg: FinetuneConfig, tokenizer: Any) -> data.PreparedData:
    """Load, check and tokenize the dataset; raise UsageError on anything unusable.

    ``cfg.max_length`` must be resolved (``config.with_max_length``) before this runs.
    """
    raw, source = data.load_raw(cfg)
    first = raw[cfg.train_split] if cfg.train_split in raw else next(iter(raw.values()))
    columns = list(first.column_names)
    task = data.infer_task(columns, first.features, cfg)
    text, pair, label = data.pick_columns(columns, task, cfg)
    used = {cfg.train_split, cfg.validation_split, *data.VALIDATION_NAMES}
    for split, ds in ((s, d) for s, d in raw.items() if s in used):  # before any carving:
        if len(ds) == 0:  # so that row numbers are the file's
            raise UsageError(f"The {split} split is empty.")
        _check_rows(ds, split, task, text, pair, label)
    train, validation, how = data.choose_splits(raw, cfg, label)
    names = None
    if label is not None:
        names = data.label_names_for(train, validation, label, task)
        train = data.encode_labels(train, label, names, task)
        validation = data.encode_labels(validation, label, names, task)
    stats: dict[str, Any] = {
        "train_rows": len(train),
        "validation_rows": len(validation),
        "language_guess": _language_of(train, text),
    }
    if names:
        stats["label_distribution"] = {
            "train": data.label_distribution(train, names, task),
            "validation": data.label_distribution(validation, names, task),
        }
    tokenize = {
        "text-classification": tokenize_classification,
        "token-classification": tokenize_tokens,
        "fill-mask": tokenize_mlm,
    }[task]
    train, train_stats = tokenize(train, tokenizer, cfg, text, pair)
    validation, val_stats = tokenize(validation, tokenizer, cfg, text, pair)
    stats["truncated"] = {"train": train_stats, "validation": val_stats}
    source = {**source, "split": how["split"], "validation": how}
    return data.PreparedData(task, train, validation, names, text, pair, label, source, stats)


def _check_rows(
    ds: Any, split: str, task: str, text: str, pair: str | None, label: str | None
) -> None:
    data.check_texts(ds, text, split, task)
    if task == "token-classification" and label:
        data.check_tags(ds, text, label, split)
    if pair:
        data.check_texts(ds, pair, split, task)


def _language_of(ds: Any, column: str) -> str | None:
    """The language of the first few hundred texts (for the card when nobody says)."""
    from hubtool.core.languages import guess_language

    sample = ds.select(range(min(300, len(ds))))[column]
    return guess_language([" ".join(t) if isinstance(t, list) else str(t) for t in sample])


def _lengths(batch: dict[str, list[Any]]) -> list[int]:
    return [len(ids) for ids in batch["input_ids"]]


def tokenize_classification(
    ds: Any, tokenizer: Any, cfg: FinetuneConfig, text: str, pair: str | None
) -> tuple[Any, int]:
    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        args = (batch[text], batch[pair]) if pair else (batch[text],)
        full = tokenizer(*args, truncation=False)
        out = tokenizer(*args, truncation=True, max_length=cfg.max_length)
        out["length"] = _lengths(out)
        out["truncated"] = [len(f) > int(cfg.max_length or 0) for f in full["input_ids"]]
        return out

    keep = {"labels"}
    mapped = ds.map(
        encode,
        batched=True,
        remove_columns=[c for c in ds.column_names if c not in keep],
        desc="Tokenizing",
    )
    truncated = sum(mapped["truncated"])
    return mapped.remove_columns(["truncated"]), truncated


def tokenize_tokens(
    ds: Any, tokenizer: Any, cfg: FinetuneConfig, text: str, pair: str | None
) -> tuple[Any, int]:
    """Sub-word tokens with word labels aligned: -100 on specials and (by default)
    continuations; with ``label_all_subwords`` continuations get the word's label."""
    if not getattr(tokenizer, "is_fast", False):
        raise UsageError(
            "Token classification needs a fast tokenizer (word_ids).",
            "Use a checkpoint that ships tokenizer.json.",
        )

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        out = tokenizer(
            batch[text], is_split_into_words=True, truncation=True, max_length=cfg.max_length
        )
        labels, truncated = [], []
        for i, word_labels in enumerate(batch["labels"]):
            word_ids = out.word_ids(i)
            aligned, previous = [], None
            for word in word_ids:
                if word is None:
                    aligned.append(-100)
                elif word != previous or cfg.label_all_subwords:
                    aligned.append(word_labels[word])
                else:
                    aligned.append(-100)
                previous = word
            labels.append(aligned)
            seen = max((w for w in word_ids if w is not None), default=-1)
            truncated.append(seen + 1 < len(word_labels))
        out["labels"], out["length"], out["truncated"] = labels, _lengths(out), truncated
        return out

    mapped = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing")
    truncated = sum(mapped["truncated"])
    return mapped.remove_columns(["truncated"]), truncated


def tokenize_mlm(
    ds: Any, tokenizer: Any, cfg: FinetuneConfig, text: str, pair: str | None
) -> tuple[Any, int]:
    """Texts concatenated and cut into blocks of ``max_length`` (course, chapter 7)."""
    if tokenizer.mask_token is None:
        raise UsageError("This tokenizer has no mask token, so it cannot do fill-mask.")
    block = int(cfg.max_length or 128)
    offsets = cfg.whole_word_mask

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        return tokenizer(  # long texts are expected: they are cut into blocks below
            batch[text],
            return_special_tokens_mask=True,
            return_offsets_mapping=offsets,
            verbose=False,
        )

    def group(batch: dict[str, list[Any]]) -> dict[str, Any]:
        joined = {k: [x for row in batch[k] for x in row] for k in batch}
        total = (len(joined["input_ids"]) // block) * block
        out: dict[str, list[Any]] = {
            k: [v[i : i + block] for i in range(0, total, block)] for k, v in joined.items()
        }
        out["length"] = [block] * (total // block)
        return out

    tokenized = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing")
    grouped = tokenized.map(group, batched=True, desc=f"Grouping into blocks of {block}")
    if len(grouped) == 0:
        raise UsageError(
            f"The text is too short to make one block of {block} tokens.",
            "Add text or lower --max-length.",
        )
    return grouped, 0
