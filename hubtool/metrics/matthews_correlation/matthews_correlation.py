"""Matthews correlation coefficient, in its multi-class (R_K) form."""

import datasets
import evaluate
import numpy


class MatthewsCorrelation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Matthews correlation coefficient (multi-class).",
            citation="Gorodkin (2004), Comparing two K-category assignments.",
            inputs_description="predictions, references: class ids",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        pred = numpy.asarray(predictions, dtype=numpy.int64)
        ref = numpy.asarray(references, dtype=numpy.int64)
        n = int(max(pred.max(initial=0), ref.max(initial=0)) + 1)
        matrix = numpy.zeros((n, n), dtype=float)
        numpy.add.at(matrix, (ref, pred), 1)
        t = matrix.sum(axis=1)
        p = matrix.sum(axis=0)
        c = numpy.trace(matrix)
        s = matrix.sum()
        denom = numpy.sqrt((s * s - (p * p).sum()) * (s * s - (t * t).sum()))
        value = (c * s - (t * p).sum()) / denom if denom > 0 else 0.0
        return {"matthews_correlation": float(value)}
