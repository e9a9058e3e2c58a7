"""Multi-label scores at a decision threshold: micro and macro precision/recall/F1, subset
accuracy (every label of an example right), per-label precision/recall/F1/support."""

import datasets
import evaluate
import numpy


def safe_div(a, b):
    a, b = numpy.asarray(a, dtype=float), numpy.asarray(b, dtype=float)
    return numpy.divide(a, b, out=numpy.zeros_like(a), where=b > 0)


class Multilabel(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Micro/macro precision, recall and F1, subset accuracy, per-label scores.",
            citation="",
            inputs_description="predictions: per-label probabilities; references: 0/1 per label; "
            "threshold: float",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references, threshold=0.5):
        prob = numpy.asarray(predictions, dtype=float)
        ref = numpy.asarray(references, dtype=numpy.int64).astype(bool)
        pred = prob >= threshold
        tp = (pred & ref).sum(axis=0)
        fp = (pred & ~ref).sum(axis=0)
        fn = (~pred & ref).sum(axis=0)
        precision, recall = safe_div(tp, tp + fp), safe_div(tp, tp + fn)
        f1 = safe_div(2 * precision * recall, precision + recall)
        micro_p = safe_div(tp.sum(), tp.sum() + fp.sum())
        micro_r = safe_div(tp.sum(), tp.sum() + fn.sum())
        return {
            "f1_micro": float(safe_div(2 * micro_p * micro_r, micro_p + micro_r)),
            "f1_macro": float(f1.mean()),
            "precision_micro": float(micro_p),
            "recall_micro": float(micro_r),
            "subset_accuracy": float((pred == ref).all(axis=1).mean()),
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": ref.sum(axis=0).tolist(),
        }
