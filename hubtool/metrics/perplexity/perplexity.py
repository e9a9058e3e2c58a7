"""Perplexity from batch losses: exp of the token-weighted mean loss."""

import math

import datasets
import evaluate
import numpy


class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="exp(sum(loss * count) / sum(count)) over evaluated batches.",
            citation="",
            inputs_description="losses: mean loss of each batch; counts: tokens it covers",
            features=datasets.Features(
                {"losses": datasets.Value("float64"), "counts": datasets.Value("int64")}
            ),
        )

    def _compute(self, losses, counts):
        loss = numpy.asarray(losses, dtype=float)
        count = numpy.asarray(counts, dtype=float)
        total = count.sum()
        mean = float((loss * count).sum() / total) if total else float("nan")
        return {"loss": mean, "perplexity": float(math.exp(min(mean, 700.0)))}
