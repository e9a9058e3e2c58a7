"""Evaluation: predictions on a split (each task gathers its own), the task's metrics through
``evaluate`` modules shipped in the package (loaded by path: nothing reaches a Hub), bootstrap
intervals, the metrics.json document."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hubtool import tasks
from hubtool.tasks import Predictions

HIGHER_IS_BETTER = {
    "accuracy": True,
    "f1_macro": True,
    "f1": True,
    "f1_micro": True,
    "subset_accuracy": True,
    "matthews_correlation": True,
    "precision": True,
    "recall": True,
    "perplexity": False,
    "loss": False,
}
metric = tasks.metric  # the evaluate modules shipped in hubtool/metrics/, loaded by path


def predict(
    accelerator: Any, model: Any, loader: Any, task: str, cfg: Any, tokenizer: Any
) -> Predictions:
    """Run the model over ``loader`` on every process; the task gathers each batch, each
    example counted once. Runs without gradients; the model is left in training mode."""
    from hubtool.training.slicing import RowsTaken

    out = Predictions(task, examples=len(getattr(loader, "dataset", None) or []))
    model.eval()
    start = time.perf_counter()
    try:
        rows_taken = RowsTaken(loader, accelerator, out)
        tasks.get(task).predict(accelerator, model, rows_taken, out, cfg, tokenizer)
    finally:
        model.train()
    out.seconds = time.perf_counter() - start
    return out


def compute(p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
    """The task's metrics (scalars plus per-class detail) for gathered predictions."""
    return tasks.get(p.task).compute(p, label_names)


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def bootstrap(
    p: Predictions, label_names: list[str] | None, n: int, seed: int = 0
) -> dict[str, list[float]]:
    """95 % percentile intervals of each scalar metric over ``n`` resamples of examples."""
    rng = np.random.default_rng(seed)
    size = p.size
    samples: dict[str, list[float]] = {}
    for _ in range(n):
        idx = rng.integers(0, size, size)
        resampled = Predictions(
            p.task,
            [p.predictions[i] for i in idx] if p.predictions else [],
            [p.references[i] for i in idx] if p.references else [],
            [p.losses[i] for i in idx] if p.losses else [],
            [p.counts[i] for i in idx] if p.counts else [],
            multi_label=p.multi_label,
            threshold=p.threshold,  # multi-label: the threshold of the whole split, fixed
        )
        for key, value in scalars(compute(resampled, label_names)).items():
            samples.setdefault(key, []).append(value)
    return {
        k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in samples.items()
    }


def better(metric_name: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new > old if HIGHER_IS_BETTER.get(metric_name, True) else new < old


def document(
    task: str,
    source: dict[str, Any],
    split: str | None,
    p: Predictions,
    metrics: dict[str, Any],
    baselines: list[dict[str, Any]] | None = None,
    groups: dict[str, list[str]] | None = None,
    resamples: int = 1000,
    label_names: list[str] | None = None,
) -> dict[str, Any]:
    """The metrics.json shape shared by finetune and evaluate; ``baselines``: what trivial
    predictors score on the same examples (``Task.baselines``; they do not change between
    evaluations of one split, so a run computes them once); ``groups``: each row's slice of
    the factors the results are broken down by (``slicing``), with ``resamples`` draws for
    their intervals."""
    from hubtool.training.slicing import by_slice

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
        "by_length": tasks.get(task).slices(p),
        "baselines": list(baselines or []),
        "by_slice": by_slice(tasks.get(task), p, label_names, groups, resamples),
        "evaluation_seconds": round(p.seconds, 3),
    }
