"""Evaluation stage: predictions on a split, task metrics through ``evaluate`` modules shipped
in the package (loaded by path: nothing reaches a Hub), bootstrap intervals, metrics.json."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METRICS_DIR = Path(__file__).resolve().parent.parent / "metrics"
HIGHER_IS_BETTER = {
    "accuracy": True,
    "f1_macro": True,
    "f1": True,
    "matthews_correlation": True,
    "precision": True,
    "recall": True,
    "perplexity": False,
    "loss": False,
}
DEFAULT_BEST = {
    "text-classification": "accuracy",
    "token-classification": "f1",
    "fill-mask": "perplexity",
}


@functools.cache
def metric(name: str) -> Any:
    """A shipped evaluate module by name; any other evaluate id is loaded as evaluate does
    (from the Hub, or a local script path); one that cannot be loaded is a UsageError."""
    import evaluate

    from hubtool.errors import UsageError

    local = METRICS_DIR / name
    try:
        return evaluate.load(str(local) if local.is_dir() else name)
    except Exception as exc:  # evaluate raises connection, file and import errors alike
        shipped = ", ".join(sorted(p.name for p in METRICS_DIR.iterdir() if p.is_dir()))
        raise UsageError(
            f"The evaluate module {name!r} cannot be loaded: {str(exc).splitlines()[0][:200]}",
            f"Shipped modules (always available): {shipped}. Others come from the Hub "
            "(HF_ENDPOINT must reach one that has them) or a local folder with the script.",
        ) from None


@dataclass
class Predictions:
    """Everything gathered from one pass over an evaluation split."""

    task: str
    predictions: list[Any] = field(default_factory=list)
    references: list[Any] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    examples: int = 0  # the split's size (fill-mask: blocks), counted once over processes


def predict(accelerator: Any, model: Any, loader: Any, task: str) -> Predictions:
    """Run the model over ``loader`` on every process; each example counted once."""
    import torch

    out = Predictions(task, examples=len(getattr(loader, "dataset", None) or []))
    model.eval()
    for batch in loader:
        with torch.no_grad():
            outputs = model(**batch)
        labels = batch["labels"]
        if task == "fill-mask":
            count = (labels != -100).sum()
            losses, counts = accelerator.gather_for_metrics(
                (outputs.loss.detach().reshape(1), count.reshape(1))
            )
            out.losses += losses.float().tolist()
            out.counts += counts.tolist()
            continue
        preds = outputs.logits.argmax(dim=-1)
        if task == "token-classification":
            preds = accelerator.pad_across_processes(preds, dim=1, pad_index=-100)
            labels = accelerator.pad_across_processes(labels, dim=1, pad_index=-100)
        lengths = batch["attention_mask"].sum(dim=-1)
        losses = example_losses(outputs.logits, batch["labels"])
        preds, labels, lengths, losses = accelerator.gather_for_metrics(
            (preds, labels, lengths, losses)
        )
        out.predictions += preds.tolist()
        out.references += labels.tolist()
        out.lengths += lengths.tolist()
        out.losses += losses.float().tolist()
    model.train()
    return out


def example_losses(logits: Any, labels: Any) -> Any:
    """Mean cross-entropy of each example (over its labelled tokens for token tasks)."""
    import torch.nn.functional as F

    if logits.dim() == 2:
        return F.cross_entropy(logits.float(), labels, reduction="none").detach()
    flat = F.cross_entropy(
        logits.float().transpose(1, 2), labels, reduction="none", ignore_index=-100
    )
    kept = (labels != -100).sum(dim=-1).clamp(min=1)
    return (flat.sum(dim=-1) / kept).detach()


def _mean_loss(p: Predictions) -> dict[str, float]:
    return {"loss": float(np.mean(p.losses))} if p.losses else {}


def compute(p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
    """The task's metrics (scalars plus per-class detail) for gathered predictions."""
    if p.task == "fill-mask":
        return metric("perplexity").compute(losses=p.losses, counts=p.counts)
    if p.task == "token-classification":
        names = label_names or []
        pred_tags, ref_tags = _tag_sequences(p.predictions, p.references, names)
        result = metric("seqeval_entities").compute(predictions=pred_tags, references=ref_tags)
        return {**result, **_mean_loss(p)}
    n = len(label_names) if label_names else None
    result = dict(metric("accuracy").compute(predictions=p.predictions, references=p.references))
    prf = metric("prf").compute(predictions=p.predictions, references=p.references, num_labels=n)
    result.update({k: prf[k] for k in ("precision_macro", "recall_macro", "f1_macro")})
    result.update(
        metric("matthews_correlation").compute(predictions=p.predictions, references=p.references)
    )
    names = label_names or [str(i) for i in range(len(prf["f1"]))]
    result["per_class"] = {
        names[i]: {
            "precision": prf["precision"][i],
            "recall": prf["recall"][i],
            "f1": prf["f1"][i],
            "support": prf["support"][i],
        }
        for i in range(len(names))
    }
    result["confusion_matrix"] = {"labels": names, "matrix": prf["confusion_matrix"]}
    return {**result, **_mean_loss(p)}


def _tag_sequences(
    preds: list[list[int]], refs: list[list[int]], names: list[str]
) -> tuple[list[list[str]], list[list[str]]]:
    pred_tags, ref_tags = [], []
    for pred_row, ref_row in zip(preds, refs, strict=True):
        kept = [(p, r) for p, r in zip(pred_row, ref_row, strict=True) if r != -100]
        pred_tags.append([names[p] if 0 <= p < len(names) else "O" for p, _ in kept])
        ref_tags.append([names[r] for _, r in kept])
    return pred_tags, ref_tags


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def bootstrap(
    p: Predictions, label_names: list[str] | None, n: int, seed: int = 0
) -> dict[str, list[float]]:
    """95 % percentile intervals of each scalar metric over ``n`` resamples of examples."""
    rng = np.random.default_rng(seed)
    size = len(p.losses) if p.task == "fill-mask" else len(p.predictions)
    samples: dict[str, list[float]] = {}
    for _ in range(n):
        idx = rng.integers(0, size, size)
        resampled = Predictions(
            p.task,
            [p.predictions[i] for i in idx] if p.predictions else [],
            [p.references[i] for i in idx] if p.references else [],
            [p.losses[i] for i in idx] if p.losses else [],
            [p.counts[i] for i in idx] if p.counts else [],
        )
        for key, value in scalars(compute(resampled, label_names)).items():
            samples.setdefault(key, []).append(value)
    return {
        k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in samples.items()
    }


def by_length(
    p: Predictions, buckets: tuple[int, ...] = (16, 32, 64, 128, 256)
) -> list[dict[str, Any]]:
    """Accuracy by input length (tokens) for classification, for the card."""
    if p.task != "text-classification" or not p.lengths:
        return []
    rows, low = [], 0
    for high in (*buckets, 1 << 30):
        idx = [i for i, n in enumerate(p.lengths) if low < n <= high]
        if idx:
            correct = sum(p.predictions[i] == p.references[i] for i in idx)
            rows.append(
                {
                    "tokens": f"{low + 1}-{high}" if high < 1 << 30 else f">{low}",
                    "examples": len(idx),
                    "accuracy": correct / len(idx),
                }
            )
        low = high
    return rows


def better(metric_name: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new > old if HIGHER_IS_BETTER.get(metric_name, True) else new < old


def document(
    task: str, source: dict[str, Any], split: str | None, p: Predictions, metrics: dict[str, Any]
) -> dict[str, Any]:
    """The metrics.json shape shared by finetune and evaluate."""
    return {
        "task": task,
        "dataset": {
            "id": source.get("id"),
            "path": source.get("path"),
            "config": source.get("config"),
            "split": split,
            "revision": source.get("revision"),
        },
        "examples": p.examples or len(p.predictions) or len(p.losses),
        "metrics": scalars(metrics),
        "details": {k: v for k, v in metrics.items() if not isinstance(v, (int, float))},
        "by_length": by_length(p),
    }
