"""Batches with little padding: length-grouped sampling, dynamic padding, MLM masking."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


class LengthGroupedBatchSampler:
    """Batches of similar lengths, in shuffled order, the same for a given (seed, epoch).

    Each epoch shuffles the examples, cuts them into mega-batches of ``50 × batch_size``,
    sorts each mega-batch by length, cuts it into batches, and shuffles the batches. Padding
    stays near the real token count while the order stays random. Without grouping it is a
    plain seeded shuffle.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        group: bool = True,
        shuffle: bool = True,
        mega: int = 50,
    ) -> None:
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.group, self.shuffle, self.mega = group, shuffle, mega
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=gen).tolist() if self.shuffle else list(range(n))
        size = self.batch_size
        if not self.group:
            yield from (order[i : i + size] for i in range(0, n, size))
            return
        batches: list[list[int]] = []
        span = size * self.mega
        for start in range(0, n, span):
            chunk = sorted(order[start : start + span], key=lambda i: -self.lengths[i])
            batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=gen).tolist()
            batches = [batches[i] for i in perm]
        yield from batches


def collator(
    task: str, tokenizer: Any, mlm_probability: float = 0.15, whole_word_mask: bool = False
) -> Any:
    from transformers import (
        DataCollatorForLanguageModeling,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
    )

    inner: Any
    if task == "fill-mask":
        inner = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=mlm_probability, whole_word_mask=whole_word_mask
        )
    elif task == "token-classification":
        inner = DataCollatorForTokenClassification(tokenizer)
    else:
        inner = DataCollatorWithPadding(tokenizer)

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        return inner([{k: v for k, v in f.items() if k != "length"} for f in features])

    return collate


def fixed_masks(dataset: Any, collate: Any, seed: int) -> Any:
    """Mask an evaluation set once, with a fixed seed, so perplexity is comparable."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:

        def mask(batch: dict[str, list[Any]]) -> dict[str, Any]:
            rows = [
                dict(zip(batch, values, strict=True))
                for values in zip(*batch.values(), strict=True)
            ]
            out = collate(rows)
            return {"input_ids": out["input_ids"].tolist(), "labels": out["labels"].tolist()}

        drop = [c for c in ("special_tokens_mask", "offset_mapping") if c in dataset.column_names]
        masked = dataset.map(
            mask,
            batched=True,
            batch_size=256,
            desc="Masking validation",
            load_from_cache_file=False,
        )
        return masked.remove_columns(drop)
    finally:
        torch.random.set_rng_state(state)


def without_length(collate: Any) -> Any:
    """Wrap a collator so the ``length`` column (used for grouping) never reaches the model."""
    return lambda features: collate(
        [{k: v for k, v in f.items() if k != "length"} for f in features]
    )
