"""Accuracy: the share of predictions equal to their reference."""

import datasets
import evaluate
import numpy


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Share of predictions equal to the reference.",
            citation="",
            inputs_description="predictions, references: class ids",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        pred = numpy.asarray(predictions)
        ref = numpy.asarray(references)
        return {"accuracy": float((pred == ref).mean()) if len(ref) else 0.0}
