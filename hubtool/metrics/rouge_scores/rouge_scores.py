"""ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F-measures (Porter-stemmed tokens), the mean over
examples on a 0..1 scale. ROUGE-Lsum splits a text into sentences at newlines, as the Hub's
rouge metric does, so no sentence tokenizer data is needed."""

import datasets
import evaluate
import numpy
from rouge_score import rouge_scorer

ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


class RougeScores(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Mean ROUGE-1/2/L/Lsum F-measure (0..1) with stemming.",
            citation="",
            inputs_description="predictions, references: one string each per example; "
            "sentences on separate lines for rougeLsum",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, per_example=False):
        # split_summaries=False: rougeLsum takes newlines as sentence ends (no nltk punkt)
        scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True, split_summaries=False)
        scores = {name: [] for name in ROUGE_TYPES}
        for pred, ref in zip(predictions, references, strict=True):
            score = scorer.score(ref, pred)  # target first, then prediction
            for name in ROUGE_TYPES:
                scores[name].append(score[name].fmeasure)
        if per_example:  # each example's F-measures (their means are the scores)
            return scores
        return {
            name: float(numpy.mean(values)) if values else 0.0 for name, values in scores.items()
        }
