"""Precision, recall and F1: macro averages, per class, and the confusion matrix."""

import datasets
import evaluate
import numpy


def confusion(pred, ref, num_labels):
    matrix = numpy.zeros((num_labels, num_labels), dtype=numpy.int64)
    numpy.add.at(matrix, (ref, pred), 1)
    return matrix


def safe_div(a, b):
    return numpy.divide(a, b, out=numpy.zeros_like(a, dtype=float), where=b > 0)


class Prf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Macro and per-class precision, recall and F1, and a confusion matrix.",
            citation="",
            inputs_description="predictions, references: class ids; num_labels: int",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, num_labels=None):
        pred = numpy.asarray(predictions, dtype=numpy.int64)
        ref = numpy.asarray(references, dtype=numpy.int64)
        n = int(num_labels or (max(pred.max(initial=0), ref.max(initial=0)) + 1))
        matrix = confusion(pred, ref, n)
        tp = numpy.diag(matrix).astype(float)
        precision = safe_div(tp, matrix.sum(axis=0).astype(float))
        recall = safe_div(tp, matrix.sum(axis=1).astype(float))
        f1 = safe_div(2 * precision * recall, precision + recall)
        return {
            "precision_macro": float(precision.mean()),
            "recall_macro": float(recall.mean()),
            "f1_macro": float(f1.mean()),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": matrix.sum(axis=1).tolist(),
            "confusion_matrix": matrix.tolist(),
        }
