"""Entity-level precision, recall and F1 over IOB2 tags (as seqeval's default mode)."""

import datasets
import evaluate
import numpy


def entities(tags):
    """(type, start, end) spans of an IOB2 (or IO) tag sequence."""
    spans = []
    kind = None
    start = 0
    for i, tag in enumerate([*list(tags), "O"]):
        prefix, _, label = tag.partition("-") if "-" in tag else (tag, "", "")
        begins = prefix == "B" or (prefix == "I" and label != kind)
        if kind is not None and (prefix == "O" or begins):
            spans.append((kind, start, i))
            kind = None
        if prefix in ("B", "I") and kind is None:
            kind = label
            start = i
    return set(spans)


def score(tp, n_pred, n_ref):
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_ref if n_ref else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def per_sequence(predictions, references):
    """Per sequence: entities right (tp), predicted and true, tokens right and tokens; the
    micro F1 of any sequences is 2 tp / (predicted + true) summed over them."""
    rows = {"tp": [], "predicted": [], "true": [], "correct_tokens": [], "tokens": []}
    for pred, ref in zip(predictions, references, strict=False):
        p_spans, r_spans = entities(pred), entities(ref)
        rows["tp"].append(len(p_spans & r_spans))
        rows["predicted"].append(len(p_spans))
        rows["true"].append(len(r_spans))
        rows["correct_tokens"].append(int(numpy.sum(numpy.asarray(pred) == numpy.asarray(ref))))
        rows["tokens"].append(len(ref))
    return rows


class SeqevalEntities(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Entity-level precision/recall/F1 and token accuracy for IOB2 tags.",
            citation="",
            inputs_description="predictions, references: lists of tag strings per sequence",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references, per_example=False):
        if per_example:  # per sequence: what the micro scores and the accuracy sum
            return per_sequence(predictions, references)
        per_type = {}
        correct_tokens = 0
        total_tokens = 0
        for pred, ref in zip(predictions, references, strict=False):
            correct_tokens += int(numpy.sum(numpy.asarray(pred) == numpy.asarray(ref)))
            total_tokens += len(ref)
            p_spans = entities(pred)
            r_spans = entities(ref)
            for kind in {s[0] for s in p_spans | r_spans}:
                counts = per_type.setdefault(kind, [0, 0, 0])
                counts[0] += len({s for s in p_spans if s[0] == kind} & r_spans)
                counts[1] += sum(1 for s in p_spans if s[0] == kind)
                counts[2] += sum(1 for s in r_spans if s[0] == kind)
        tp = sum(c[0] for c in per_type.values())
        n_pred = sum(c[1] for c in per_type.values())
        n_ref = sum(c[2] for c in per_type.values())
        precision, recall, f1 = score(tp, n_pred, n_ref)
        result = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "accuracy": correct_tokens / total_tokens if total_tokens else 0.0,
        }
        for kind, (t, p, r) in sorted(per_type.items()):
            kp, kr, kf = score(t, p, r)
            result[kind] = {"precision": kp, "recall": kr, "f1": kf, "number": r}
        return result
