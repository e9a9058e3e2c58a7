"""Token classification: a ``tokens`` column and a tag column, labels aligned to sub-words
(-100 on specials and continuations, or every sub-word with ``label_all_subwords``), a
token-classification head, entity-level precision/recall/F1 (seqeval)."""

from __future__ import annotations

from typing import Any, ClassVar

from hubtool.errors import UsageError
from hubtool.tasks.base import (
    LENGTH_BUCKETS,
    Collate,
    Columns,
    Predictions,
    Task,
    bucket_names,
    check_given,
    lengths,
    mean_loss,
    metric,
    ratio,
    without_length,
)
from hubtool.tasks.classification import gather_labels

TAG_COLUMNS = ("ner_tags", "tags", "labels", "pos_tags", "label")


class TokenClassification(Task):
    name = "token-classification"
    title = "Token Classification"
    auto_class = "AutoModelForTokenClassification"
    best_metric = "f1"
    release_requirement = "f1>=0.80"
    examples: ClassVar[dict[str, str]] = {
        "en": "My name is Sarah and I live in London.",
        "fr": "Je m'appelle Marie et j'habite à Lyon.",
    }
    per_token = True
    pipeline_options = ', aggregation_strategy="simple"'

    def claims(self, columns: list[str], label_column: str | None) -> bool:
        return "tokens" in columns and any(c in columns for c in TAG_COLUMNS if c != "label")

    def columns(self, columns: list[str], cfg: Any) -> Columns:
        check_given(columns, cfg)
        tokens = cfg.text_column or "tokens"
        tags = cfg.label_column or next((c for c in TAG_COLUMNS if c in columns), None)
        if tokens not in columns or tags is None:
            raise UsageError(
                "Token classification needs a 'tokens' column and a tag column.",
                f"Columns: {', '.join(columns)}. Use --text-column and --label-column.",
            )
        return Columns(tokens, None, tags)

    def check_rows(self, ds: Any, split: str, cols: Columns) -> None:
        super().check_rows(ds, split, cols)
        assert cols.label is not None
        for i, (words, tags) in enumerate(zip(ds[cols.text], ds[cols.label], strict=True)):
            if not isinstance(tags, list) or len(tags) != len(words):
                got = len(tags) if isinstance(tags, list) else type(tags).__name__
                raise UsageError(
                    f"Row {i} of split {split!r} has {len(words)} tokens but {got} tags in "
                    f"column {cols.label!r}.",
                    "Give every token exactly one tag (and every row a list of tags).",
                )

    def tokenize(self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns) -> tuple[Any, int]:
        if not getattr(tokenizer, "is_fast", False):
            raise UsageError(
                "Token classification needs a fast tokenizer (word_ids).",
                "Use a checkpoint that ships tokenizer.json.",
            )

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            out = tokenizer(
                batch[cols.text],
                is_split_into_words=True,
                truncation=True,
                max_length=cfg.max_length,
            )
            aligned = [
                align(out.word_ids(i), tags, cfg.label_all_subwords)
                for i, tags in enumerate(batch["labels"])
            ]
            out["labels"], out["length"] = [a for a, _ in aligned], lengths(out)
            out["truncated"] = [cut for _, cut in aligned]
            return out

        mapped = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing")
        truncated = sum(mapped["truncated"])
        return mapped.remove_columns(["truncated"]), truncated

    def collator(self, tokenizer: Any, cfg: Any, pad_multiple: int | None = None) -> Collate:
        from transformers import DataCollatorForTokenClassification

        return without_length(
            DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_multiple)
        )

    def gather(
        self, accelerator: Any, outputs: Any, batch: dict[str, Any], out: Predictions
    ) -> None:
        gather_labels(accelerator, outputs, batch, out, pad=True)

    def compute(self, p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
        names = label_names or []
        pred_tags, ref_tags = tag_sequences(p.predictions, p.references, names)
        result = metric("seqeval_entities").compute(predictions=pred_tags, references=ref_tags)
        return {**result, **mean_loss(p)}

    def slice_groups(self, p: Predictions, label_names: list[str] | None) -> dict[str, list[str]]:
        return {"input tokens": bucket_names(p.lengths, LENGTH_BUCKETS)}

    def example_stats(
        self, p: Predictions, label_names: list[str] | None
    ) -> dict[str, tuple[Any, Any]]:
        """Entity micro F1 (2 tp / (predicted + true)) and token accuracy, per sequence."""
        import numpy as np

        pred_tags, ref_tags = tag_sequences(p.predictions, p.references, label_names or [])
        rows = metric("seqeval_entities").compute(
            predictions=pred_tags, references=ref_tags, per_example=True
        )
        col = {k: np.asarray(v, dtype=float) for k, v in rows.items()}
        return {
            "f1": (np.stack([2 * col["tp"], col["predicted"] + col["true"]], axis=1), ratio),
            "accuracy": (np.stack([col["correct_tokens"], col["tokens"]], axis=1), ratio),
        }


def align(
    word_ids: list[int | None], tags: list[int], every_subword: bool
) -> tuple[list[Any], bool]:
    """(one label per sub-word, whether words were cut off by truncation)."""
    aligned, previous = [], None
    for word in word_ids:
        if word is None:
            aligned.append(-100)
        elif word != previous or every_subword:
            aligned.append(tags[word])
        else:
            aligned.append(-100)
        previous = word
    seen = max((w for w in word_ids if w is not None), default=-1)
    return aligned, seen + 1 < len(tags)


def tag_sequences(
    preds: list[list[int]], refs: list[list[int]], names: list[str]
) -> tuple[list[list[str]], list[list[str]]]:
    pred_tags, ref_tags = [], []
    for pred_row, ref_row in zip(preds, refs, strict=True):
        kept = [(p, r) for p, r in zip(pred_row, ref_row, strict=True) if r != -100]
        pred_tags.append([names[p] if 0 <= p < len(names) else "O" for p, _ in kept])
        ref_tags.append([names[r] for _, r in kept])
    return pred_tags, ref_tags
