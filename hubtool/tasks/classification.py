"""Text classification: single texts or pairs, one label per example (``ClassLabel`` names or
string/int values), a sequence-classification head, accuracy / macro P/R/F1 / Matthews."""

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
    buckets,
    check_given,
    example_losses,
    holds_lists,
    lengths,
    mean_loss,
    metric,
    ratio,
    same_output,
    without_length,
)

TEXT_COLUMNS = ("text", "sentence", "sentence1", "content", "review", "document", "question")
PAIR_COLUMNS = {
    "sentence1": "sentence2",
    "text": "text_pair",
    "question": "context",
    "premise": "hypothesis",
}
LABEL_COLUMNS = ("label", "labels", "class", "category", "target")


def text_columns(columns: list[str], cfg: Any) -> tuple[str, str | None]:
    """(text column, pair column) of a text task, from the names given or the usual names."""
    check_given(columns, cfg)
    text = cfg.text_column or next((c for c in TEXT_COLUMNS if c in columns), None)
    if text is None:
        raise UsageError(
            "No text column found.", f"Columns: {', '.join(columns)}. Use --text-column."
        )
    pair = cfg.text_pair_column or (
        PAIR_COLUMNS.get(text) if PAIR_COLUMNS.get(text) in columns else None
    )
    return text, pair


class TextClassification(Task):
    name = "text-classification"
    title = "Text Classification"
    auto_class = "AutoModelForSequenceClassification"
    best_metric = "accuracy"
    release_requirement = "accuracy>=0.80"
    examples: ClassVar[dict[str, str]] = {
        "en": "I really enjoyed this, it was great.",
        "fr": "J'ai vraiment adoré ce film, il était génial.",
    }

    families: ClassVar[dict[str, str]] = {
        "encoder": "{arch} is a pretrained encoder: a new {task} head will be trained on your data",
        "seq2seq": "{arch} is a sequence-to-sequence model: it can be fine-tuned for {task}",
        "decoder": "{arch} is a decoder: it can be fine-tuned for {task}",
    }

    def claims(self, columns: list[str], label_column: str | None) -> bool:
        return bool(label_column) or any(c in columns for c in LABEL_COLUMNS)

    def columns(self, columns: list[str], cfg: Any) -> Columns:
        text, pair = text_columns(columns, cfg)
        label = cfg.label_column or next((c for c in LABEL_COLUMNS if c in columns), None)
        if label is None:
            raise UsageError(
                "No label column found for text classification.",
                f"Columns: {', '.join(columns)}. Use --label-column.",
            )
        return Columns(text, pair, label)

    def check_rows(self, ds: Any, split: str, cols: Columns) -> None:
        super().check_rows(ds, split, cols)
        if cols.label and holds_lists(ds, cols.label):  # multi-label: a list in every row
            for i, row in enumerate(ds[cols.label]):
                if row is None or any(v is None for v in row):
                    raise UsageError(
                        f"Row {i} of the {split} split has no label list in {cols.label!r} "
                        "(or a null in it).",
                        "Give each row a list of its labels; [] for a row with none.",
                    )

    def tokenize(self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns) -> tuple[Any, int]:
        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            args = (batch[cols.text], batch[cols.pair]) if cols.pair else (batch[cols.text],)
            full = tokenizer(*args, truncation=False)
            out = tokenizer(*args, truncation=True, max_length=cfg.max_length)
            out["length"] = lengths(out)
            out["truncated"] = [len(f) > int(cfg.max_length or 0) for f in full["input_ids"]]
            return out

        mapped = ds.map(
            encode,
            batched=True,
            remove_columns=[c for c in ds.column_names if c != "labels"],
            desc="Tokenizing",
        )
        truncated = sum(mapped["truncated"])
        return mapped.remove_columns(["truncated"]), truncated

    def collator(self, tokenizer: Any, cfg: Any, pad_multiple: int | None = None) -> Collate:
        from transformers import DataCollatorWithPadding

        return without_length(DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple))

    def train_faster(self, model: Any, batch: dict[str, Any]) -> str | None:
        """The last encoder layer at the first position only, where the head reads no other
        (tasks/first_token.py); kept only if the logits on ``batch`` are the stock ones."""
        from hubtool.tasks import first_token

        layer = first_token.install(model)
        if layer is None:
            return None
        if not same_output(model, batch, lambda out: out.logits, first_token.stock(model)):
            first_token.remove(model, layer)
            return None
        return f"last layer ({type(layer).__name__}) at the first position only"

    def best_for(self, multi_label: bool) -> str:
        return "f1_micro" if multi_label else self.best_metric

    def release_for(self, multi_label: bool) -> str:
        return "f1_micro>=0.80" if multi_label else self.release_requirement

    def gather(
        self, accelerator: Any, outputs: Any, batch: dict[str, Any], out: Predictions
    ) -> None:
        if batch["labels"].is_floating_point():  # 0/1 per label: multi-label
            gather_label_sets(accelerator, outputs, batch, out)
        else:
            gather_labels(accelerator, outputs, batch, out, pad=False)

    def compute(self, p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
        if p.multi_label:
            return multi_label_metrics(p, label_names)
        n = len(label_names) if label_names else None
        refs, preds = p.references, p.predictions
        result = dict(metric("accuracy").compute(predictions=preds, references=refs))
        prf = metric("prf").compute(predictions=preds, references=refs, num_labels=n)
        result.update({k: prf[k] for k in ("precision_macro", "recall_macro", "f1_macro")})
        result.update(metric("matthews_correlation").compute(predictions=preds, references=refs))
        names = label_names or [str(i) for i in range(len(prf["f1"]))]
        result["per_class"] = {
            names[i]: {k: prf[k][i] for k in ("precision", "recall", "f1", "support")}
            for i in range(len(names))
        }
        result["confusion_matrix"] = {"labels": names, "matrix": prf["confusion_matrix"]}
        if len(set(preds)) == 1 and len(names) > 1:  # said plainly in the card
            result["one_class"] = names[preds[0]] if preds[0] < len(names) else str(preds[0])
        return {**result, **mean_loss(p)}

    def baselines(
        self, p: Predictions, label_names: list[str] | None, train: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The majority class of the training data for every example, and a class drawn
        uniformly at random (the mean of 20 seeded draws); multi-label: every label the
        training data carries on at least half of its examples, and each label a coin toss."""
        import numpy as np

        if not p.references or not label_names:
            return []
        if p.multi_label:
            return _label_set_baselines(self, p, label_names, train)
        known = {name: int((train.get("counts") or {}).get(name, 0)) for name in label_names}
        counted = sum(known.values()) > 0
        majority = max(range(len(label_names)), key=lambda i: known[label_names[i]])
        if not counted:  # no training counts (evaluating a bare model): this split's
            majority = max(set(p.references), key=p.references.count)
        rng = np.random.default_rng(0)
        draws = [rng.integers(0, len(label_names), p.size).tolist() for _ in range(20)]
        return [
            {
                "name": "majority",
                "label": f"Always {label_names[majority]}",
                "about": "the most frequent label of the training data, for every example"
                if counted
                else "the most frequent label of this split, for every example",
                "metrics": _scores(self, p, [majority] * p.size, label_names),
            },
            {
                "name": "uniform",
                "label": "Uniform random",
                "about": "a label drawn uniformly for each example (mean of 20 seeded draws)",
                "metrics": _mean([_scores(self, p, d, label_names) for d in draws]),
            },
        ]

    def example_stats(
        self, p: Predictions, label_names: list[str] | None
    ) -> dict[str, tuple[Any, Any]]:
        """Accuracy (subset accuracy and micro F1 for multi-label) as sums over examples."""
        import numpy as np

        right = np.asarray(_right(p), dtype=float)
        ones = np.ones_like(right)
        if not p.multi_label:
            return {"accuracy": (np.stack([right, ones], axis=1), ratio)}
        t = p.threshold if p.threshold is not None else 0.5
        pred = np.asarray(p.predictions, dtype=float) >= t
        ref = np.asarray(p.references, dtype=float) > 0.5
        tp, wrong = (pred & ref).sum(axis=1), (pred != ref).sum(axis=1)
        return {
            "f1_micro": (np.stack([2 * tp, 2 * tp + wrong], axis=1).astype(float), ratio),
            "subset_accuracy": (np.stack([right, ones], axis=1), ratio),
        }

    def slice_groups(self, p: Predictions, label_names: list[str] | None) -> dict[str, list[str]]:
        """Each example's true label (single-label: accuracy there is the class's recall)
        and its length in tokens."""
        groups = {"input tokens": bucket_names(p.lengths, LENGTH_BUCKETS)}
        if p.multi_label or not label_names or not p.references:
            return groups
        return {"label": [label_names[r] for r in p.references], **groups}

    def slices(self, p: Predictions) -> list[dict[str, Any]]:
        """Accuracy by input length (tokens); subset accuracy for multi-label."""
        right = _right(p)
        return [
            {
                "tokens": span,
                "examples": len(idx),
                "accuracy": sum(right[i] for i in idx) / len(idx),
            }
            for span, idx in buckets(p.lengths, LENGTH_BUCKETS)
        ]


def _scores(
    task: Task, p: Predictions, predictions: list[Any], label_names: list[str]
) -> dict[str, float]:
    """The task's scalar metrics for other predictions of the same examples (no loss: a
    trivial predictor has no probabilities)."""
    other = Predictions(
        p.task, predictions, p.references, multi_label=p.multi_label, threshold=p.threshold
    )
    scored = task.compute(other, label_names)
    return {k: float(v) for k, v in scored.items() if isinstance(v, (int, float)) and k != "loss"}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def _label_set_baselines(
    task: Task, p: Predictions, label_names: list[str], train: dict[str, Any]
) -> list[dict[str, Any]]:
    import numpy as np

    counts, rows = train.get("counts") or {}, int(train.get("rows") or 0)
    source = "the training data"
    if not rows:  # no training counts: this split's
        counts = {n: sum(r[i] for r in p.references) for i, n in enumerate(label_names)}
        rows, source = len(p.references), "this split"
    common = [float(counts.get(n, 0) >= rows / 2) for n in label_names]
    rng = np.random.default_rng(0)
    coins = [
        (rng.random((p.size, len(label_names))) < 0.5).astype(float).tolist() for _ in range(20)
    ]
    return [
        {
            "name": "majority",
            "label": "Every common label" if any(common) else "No label",
            "about": f"every label {source} carries on half its examples or more",
            "metrics": _scores(task, p, [common] * p.size, label_names),
        },
        {
            "name": "uniform",
            "label": "Each label a coin toss",
            "about": "each label predicted with probability 0.5 (mean of 20 seeded draws)",
            "metrics": _mean([_scores(task, p, c, label_names) for c in coins]),
        },
    ]


def gather_labels(
    accelerator: Any, outputs: Any, batch: dict[str, Any], out: Predictions, pad: bool
) -> None:
    """Arg-max predictions, labels, lengths and per-example losses of a labelled batch
    (``pad``: token-level tensors, padded to one width across processes first)."""
    preds, labels = outputs.logits.argmax(dim=-1), batch["labels"]
    if pad:
        preds = accelerator.pad_across_processes(preds, dim=1, pad_index=-100)
        labels = accelerator.pad_across_processes(labels, dim=1, pad_index=-100)
    sizes = batch["attention_mask"].sum(dim=-1)
    losses = example_losses(outputs.logits, batch["labels"])
    preds, labels, sizes, losses = accelerator.gather_for_metrics((preds, labels, sizes, losses))
    out.predictions += preds.tolist()
    out.references += labels.tolist()
    out.lengths += sizes.tolist()
    out.losses += losses.float().tolist()


def _right(p: Predictions) -> list[bool]:
    """Per example: its prediction is right (every label, for multi-label)."""
    if not p.multi_label:
        return [a == b for a, b in zip(p.predictions, p.references, strict=True)]
    t = p.threshold if p.threshold is not None else 0.5
    return [
        all((x >= t) == bool(y) for x, y in zip(prob, ref, strict=True))
        for prob, ref in zip(p.predictions, p.references, strict=True)
    ]


def gather_label_sets(
    accelerator: Any, outputs: Any, batch: dict[str, Any], out: Predictions
) -> None:
    """Multi-label: per-label probabilities (sigmoid), 0/1 references, lengths, and each
    example's mean binary cross-entropy."""
    import torch.nn.functional as F

    logits, labels = outputs.logits.float(), batch["labels"].float()
    losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(dim=-1)
    sizes = batch["attention_mask"].sum(dim=-1)
    probs, labels, sizes, losses = accelerator.gather_for_metrics(
        (logits.sigmoid().detach(), labels, sizes, losses.detach())
    )
    out.multi_label = True
    out.predictions += probs.tolist()
    out.references += labels.int().tolist()
    out.lengths += sizes.tolist()
    out.losses += losses.tolist()


THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 … 0.95


def multi_label_metrics(p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
    """Scores at the decision threshold: ``p.threshold`` when set (a trained model's, or a
    bootstrap's), else the one that maximises micro F1 on these predictions (the validation
    split during training; ties go to the threshold nearest 0.5), which is then set."""
    scorer = metric("multilabel")

    def at(t: float) -> dict[str, Any]:
        return dict(scorer.compute(predictions=p.predictions, references=p.references, threshold=t))

    if p.threshold is not None:  # fixed already: the model's own, or a bootstrap's
        best, result = p.threshold, at(p.threshold)
    else:
        scored = {t: at(t) for t in THRESHOLDS}
        best = max(THRESHOLDS, key=lambda t: (scored[t]["f1_micro"], -abs(t - 0.5)))
        p.threshold, result = best, scored[best]
    names = label_names or [str(i) for i in range(len(result["f1"]))]
    result["per_class"] = {
        names[i]: {k: result[k][i] for k in ("precision", "recall", "f1", "support")}
        for i in range(len(names))
    }
    for key in ("precision", "recall", "f1", "support"):
        del result[key]
    result["decision"] = {
        "threshold": best,
        "chosen": "the threshold in 0.05–0.95 with the best micro F1 on the evaluated split",
    }
    return {**result, **mean_loss(p)}
