"""Extractive question answering: exact match and token F1 as the official SQuAD v1.1/v2.0
scripts compute them (normalized answers, best over the gold answers), on a 0..1 scale. A
question with no gold answers is unanswerable: right iff the prediction is empty."""

import collections
import re
import string

import datasets
import evaluate

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = set(string.punctuation)


def normalize_answer(text):
    """Lower case, drop punctuation, the articles a/an/the, and extra whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def exact(gold, pred):
    return float(normalize_answer(gold) == normalize_answer(pred))


def f1(gold, pred):
    gold_tokens = normalize_answer(gold).split()
    pred_tokens = normalize_answer(pred).split()
    if not gold_tokens or not pred_tokens:
        # no answer on either side: right only if both are empty
        return float(gold_tokens == pred_tokens)
    common = collections.Counter(gold_tokens) & collections.Counter(pred_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def mean(values):
    return sum(values) / len(values) if values else 0.0


class SquadQa(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="SQuAD v1.1/v2.0 exact match and F1 (0..1), split by answerability.",
            citation="",
            inputs_description="predictions: answer strings (empty = no answer); references: "
            "lists of gold answer strings (empty = unanswerable)",
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references, per_example=False):
        em_scores, f1_scores, answerable = [], [], []
        for pred, answers in zip(predictions, references, strict=True):
            # as the v2.0 script: golds that normalize to nothing count as "no answer"
            golds = [a for a in answers if normalize_answer(a)] or [""]
            em_scores.append(max(exact(gold, pred) for gold in golds))
            f1_scores.append(max(f1(gold, pred) for gold in golds))
            answerable.append(bool(answers))
        if per_example:  # each question's scores (their means are exact_match and f1)
            return {"exact_match": em_scores, "f1": f1_scores}
        result = {"exact_match": mean(em_scores), "f1": mean(f1_scores)}
        if all(answerable):
            return result
        has = [i for i, a in enumerate(answerable) if a]
        none = [i for i, a in enumerate(answerable) if not a]
        if has:
            result["has_answer_exact_match"] = mean([em_scores[i] for i in has])
            result["has_answer_f1"] = mean([f1_scores[i] for i in has])
        result["no_answer_exact_match"] = mean([em_scores[i] for i in none])
        result["has_answer_total"] = len(has)
        result["no_answer_total"] = len(none)
        return result
