"""Corpus BLEU and chrF as sacreBLEU computes them (0..100), with one or more references per
prediction; `tokenize` picks BLEU's tokenizer (13a by default, or intl, zh, char, ...)."""

import datasets
import evaluate
import sacrebleu


def reference_streams(references):
    """sacreBLEU wants one stream per reference position, each as long as the predictions:
    a prediction with fewer references repeats its last one."""
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    if any(not r for r in refs):
        raise ValueError("every prediction needs at least one reference")
    width = max((len(r) for r in refs), default=1)
    padded = [r + [r[-1]] * (width - len(r)) for r in refs]
    return [[r[i] for r in padded] for i in range(width)]


def sentence_stats(scorer, predictions, streams):
    """Per sentence, the counts sacreBLEU sums for a corpus score (n-gram matches and totals,
    lengths); sacreBLEU's ``_compute_score_from_stats`` scores a sum of them (its own
    bootstrap does the same)."""
    return [list(map(int, s)) for s in scorer._extract_corpus_statistics(predictions, streams)]


class SacrebleuChrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="sacreBLEU corpus BLEU and chrF (0..100), with several references.",
            citation="",
            inputs_description="predictions: strings; references: a list of reference strings "
            "per prediction (or one string); tokenize: sacreBLEU BLEU tokenizer name",
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Value("string"),
                    }
                ),
            ],
        )

    def _compute(self, predictions, references, tokenize=None, per_example=False):
        predictions = list(predictions)
        streams = reference_streams(references)
        if per_example:  # each sentence's statistics: corpus scores are scores of their sums
            bleu = sacrebleu.metrics.BLEU(tokenize=tokenize)
            return {
                "bleu_stats": sentence_stats(bleu, predictions, streams),
                "chrf_stats": sentence_stats(sacrebleu.metrics.CHRF(), predictions, streams),
            }
        bleu = sacrebleu.metrics.BLEU(tokenize=tokenize).corpus_score(predictions, streams)
        chrf = sacrebleu.metrics.CHRF().corpus_score(predictions, streams)
        return {
            "bleu": float(bleu.score),
            "bleu_precisions": [float(p) for p in bleu.precisions],
            "brevity_penalty": float(bleu.bp),
            "length_ratio": float(bleu.sys_len / bleu.ref_len) if bleu.ref_len else 0.0,
            "chrf": float(chrf.score),
        }
