"""Masked language modelling (domain adaptation, or pretraining ``--from-scratch``): texts
concatenated and cut into blocks of ``max_length``, 15 % of tokens masked (optionally whole
words), validation masked once with a fixed seed, perplexity."""

from __future__ import annotations

from typing import Any, ClassVar

from hubtool.core.architectures import MLM_ENCODERS, Fit
from hubtool.errors import UsageError
from hubtool.tasks.base import (
    Checkpoint,
    Collate,
    Columns,
    Predictions,
    Task,
    example_text,
    metric,
    row_value,
    same_output,
    without_length,
)
from hubtool.tasks.classification import text_columns

MLM_SETTINGS = ("mlm_probability", "whole_word_mask")


class FillMask(Task):
    name = "fill-mask"
    title = "Masked Language Modeling"
    auto_class = "AutoModelForMaskedLM"
    best_metric = "perplexity"
    release_requirement = "perplexity<50"
    examples: ClassVar[dict[str, str]] = {
        "en": "Paris is the {mask} of France.",
        "fr": "Paris est la {mask} de la France.",
    }
    labelled = False
    predicts = False
    bias_probe = "completions"

    def claims(self, columns: list[str], label_column: str | None) -> bool:
        return True  # any text: the fallback of --task auto

    def columns(self, columns: list[str], cfg: Any) -> Columns:
        text, _ = text_columns(columns, cfg)
        return Columns(text)

    def data_example(self, row: dict[str, Any], cols: Columns, cfg: Any) -> Any:
        """A validation text (its first 40 words) with its middle word masked."""
        text = example_text(" ".join(str(row_value(row, cols.text) or "").split()[:40]))
        words = (text or "").split(" ")
        alphabetic = [i for i, w in enumerate(words) if w.isalpha()]
        if len(words) < 4 or not alphabetic:
            return None
        middle = min(alphabetic, key=lambda i: abs(i - len(words) // 2))
        words[middle] = "{mask}"
        return " ".join(words)

    def tokenize(self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns) -> tuple[Any, int]:
        """Texts concatenated and cut into blocks of ``max_length`` (course, chapter 7)."""
        if tokenizer.mask_token is None:
            raise UsageError("This tokenizer has no mask token, so it cannot do fill-mask.")
        block = int(cfg.max_length or 128)

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            return tokenizer(  # long texts are expected: they are cut into blocks below
                batch[cols.text],
                return_special_tokens_mask=True,
                return_offsets_mapping=cfg.whole_word_mask,
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

    def collator(self, tokenizer: Any, cfg: Any, pad_multiple: int | None = None) -> Collate:
        from transformers import DataCollatorForLanguageModeling

        return without_length(
            DataCollatorForLanguageModeling(
                tokenizer,
                mlm_probability=cfg.mlm_probability,
                whole_word_mask=cfg.whole_word_mask,
                pad_to_multiple_of=pad_multiple,
            )
        )

    def train_faster(self, model: Any, batch: dict[str, Any]) -> str | None:
        """The vocabulary projection only at the masked positions (about 15 % of them).

        With a 30k-word vocabulary the output layer costs as much as a small encoder: the
        stock forward computes it for every position and throws 85 % away. This forward runs
        the base model, gathers the masked positions' hidden states and applies the head to
        those only; the loss is the same mean cross-entropy. It is used where the model is a
        base model plus one position-wise head, and only if it gives the stock forward's
        loss on ``batch`` (in eval mode); otherwise the stock forward stays."""
        head = _single_head(model)
        if head is None or "labels" not in batch:
            return None
        stock = model.forward
        model.forward = _masked_positions_forward(model, head, stock)
        if not same_output(model, batch, lambda out: out.loss, stock):
            model.forward = stock
            return None
        return f"vocabulary projection at masked positions only ({type(head).__name__})"

    def row_numbers(self, raw: Any, features: Any, cols: Columns) -> list[int] | None:
        """Texts are joined and cut into blocks: a prediction belongs to no one row."""
        return None

    def evaluation_set(self, validation: Any, collate: Collate, seed: int) -> tuple[Any, Collate]:
        from transformers import default_data_collator

        return fixed_masks(validation, collate, seed), without_length(default_data_collator)

    def gather(
        self, accelerator: Any, outputs: Any, batch: dict[str, Any], out: Predictions
    ) -> None:
        count = (batch["labels"] != -100).sum()
        losses, counts = accelerator.gather_for_metrics(
            (outputs.loss.detach().reshape(1), count.reshape(1))
        )
        out.losses += losses.float().tolist()
        out.counts += counts.tolist()

    def compute(self, p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
        return dict(metric("perplexity").compute(losses=p.losses, counts=p.counts))

    def data_settings(self, config: dict[str, Any]) -> dict[str, Any] | None:
        return {k: config.get(k) for k in MLM_SETTINGS}

    def fit(self, checkpoint: Checkpoint) -> Fit:
        if (ready := self.ready(checkpoint)) is not None:
            return ready
        if checkpoint.family != "encoder":
            arch = (
                checkpoint.heads[0][0]
                if checkpoint.heads
                else (checkpoint.model_type or "this architecture")
            )
            return Fit("no", f"{arch} cannot serve {self.name}")
        if not checkpoint.architectures and checkpoint.model_type in MLM_ENCODERS:
            return Fit(
                "ready",
                f"no architectures in config; {checkpoint.model_type} checkpoints are "
                "pretrained as masked LMs (AutoModelForMaskedLM)",
            )
        arch = (
            checkpoint.heads[0][0]
            if checkpoint.heads
            else (checkpoint.model_type or "this architecture")
        )
        return Fit(
            "base",
            f"{arch} is an encoder without its masked-LM head: a new, untrained head "
            "would be added",
        )


def fixed_masks(dataset: Any, collate: Collate, seed: int) -> Any:
    """Mask an evaluation set once, with a fixed seed, so perplexity is comparable."""
    import torch

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


def _single_head(model: Any) -> Any:
    """The model's one module besides its base model (BERT's ``cls``, RoBERTa's
    ``lm_head``), or None when the head is spread over several modules."""
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return None
    others = [child for child in model.children() if child is not base]
    return others[0] if len(others) == 1 else None


def _masked_positions_forward(model: Any, head: Any, stock: Any) -> Any:
    import torch
    from transformers.modeling_outputs import MaskedLMOutput

    def forward(labels: Any = None, **inputs: Any) -> Any:
        if labels is None or inputs.get("inputs_embeds") is not None:
            return stock(labels=labels, **inputs)
        hidden = model.base_model(**inputs)[0]
        chosen = labels != -100
        logits = head(hidden[chosen])  # [masked tokens, vocabulary]
        loss = torch.nn.functional.cross_entropy(logits, labels[chosen])
        return MaskedLMOutput(loss=loss, logits=logits)

    return forward
