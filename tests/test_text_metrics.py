"""The shipped text-generation metrics, loaded by name as training does: SQuAD exact match and
F1 (normalized, best gold, unanswerable questions), ROUGE F-measures and sacreBLEU's BLEU and
chrF, checked against hand-computed values and against the scoring packages themselves."""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from hubtool.tasks.base import metric


@pytest.fixture(scope="module")
def squad():
    return metric("squad_qa")


@pytest.fixture(scope="module")
def rouge():
    return metric("rouge_scores")


@pytest.fixture(scope="module")
def bleu():
    return metric("sacrebleu_chrf")


# --- SQuAD -------------------------------------------------------------------------------


def test_squad_normalizes_case_punctuation_articles_and_spaces(squad):
    out = squad.compute(
        predictions=["The Cat!", "an apple,  please.", "Paris"],
        references=[["cat"], ["Apple please"], ["London"]],
    )
    assert out == {"exact_match": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3)}


def test_squad_partial_overlap_f1(squad):
    # "big red dog" vs "red dog": precision 2/3, recall 1 -> F1 0.8, no exact match
    out = squad.compute(predictions=["big red dog"], references=[["the red dog"]])
    assert out["exact_match"] == 0.0
    assert out["f1"] == pytest.approx(0.8)


def test_squad_takes_the_best_gold_answer(squad):
    # "brown dog" vs "dog": F1 2/3; vs "small brown dog": F1 0.8 -> 0.8
    out = squad.compute(predictions=["brown dog"], references=[["dog", "small brown dog"]])
    assert out["f1"] == pytest.approx(0.8) and out["exact_match"] == 0.0
    # exact match on any one gold counts
    out = squad.compute(predictions=["red dog"], references=[["dog", "a red dog"]])
    assert out == {"exact_match": 1.0, "f1": 1.0}


def test_squad_unanswerable_questions(squad):
    out = squad.compute(
        predictions=["cat", "big red dog", "", "something"],
        references=[["the cat"], ["red dog"], [], []],
    )
    # per question EM 1, 0, 1, 0 and F1 1, 0.8, 1, 0
    assert out == {
        "exact_match": pytest.approx(0.5),
        "f1": pytest.approx(2.8 / 4),
        "has_answer_exact_match": pytest.approx(0.5),
        "has_answer_f1": pytest.approx(0.9),
        "no_answer_exact_match": pytest.approx(0.5),
        "has_answer_total": 2,
        "no_answer_total": 2,
    }
    # answering an answerable question with "" scores nothing
    out = squad.compute(predictions=[""], references=[["Paris"]])
    assert out == {"exact_match": 0.0, "f1": 0.0}


def test_squad_only_unanswerable_questions_have_no_has_answer_scores(squad):
    out = squad.compute(predictions=["", "x"], references=[[], []])
    assert out["no_answer_exact_match"] == pytest.approx(0.5)
    assert out["has_answer_total"] == 0 and out["no_answer_total"] == 2
    assert "has_answer_f1" not in out


# --- ROUGE -------------------------------------------------------------------------------

KEYS = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


def test_rouge_identical_and_disjoint(rouge):
    same = rouge.compute(
        predictions=["the cat sat on the mat"], references=["the cat sat on the mat"]
    )
    assert same == {k: pytest.approx(1.0) for k in KEYS}
    disjoint = rouge.compute(predictions=["alpha beta gamma"], references=["one two three"])
    assert disjoint == {k: 0.0 for k in KEYS}
    # the mean over examples
    both = rouge.compute(predictions=["a b c", "x y z"], references=["a b c", "p q r"])
    assert both == {k: pytest.approx(0.5) for k in KEYS}


def test_rouge_partial_values_match_rouge_score(rouge):
    pred, ref = "the cat was found under the bed", "the cat was under the bed"
    out = rouge.compute(predictions=[pred], references=[ref])
    # unigrams: 6 of 7 predicted, 6 of 6 reference -> 12/13; bigrams: 4 of 6, 4 of 5 -> 8/11
    assert out["rouge1"] == pytest.approx(12 / 13)
    assert out["rouge2"] == pytest.approx(8 / 11)
    direct = rouge_scorer.RougeScorer(KEYS, use_stemmer=True).score(ref, pred)
    assert out == {k: pytest.approx(direct[k].fmeasure) for k in KEYS}


def test_rouge_stems_and_splits_lsum_on_newlines(rouge):
    # Porter stemming (no nltk data needed): cats/cat, running/runs
    out = rouge.compute(predictions=["cats running"], references=["cat runs"])
    assert out["rouge1"] == pytest.approx(1.0)
    # sentences swapped: rougeL (one sequence) loses the order, rougeLsum (per line) does not
    out = rouge.compute(
        predictions=["on the mat\nthe cat sat"], references=["the cat sat\non the mat"]
    )
    assert out["rougeLsum"] == pytest.approx(1.0)
    assert out["rougeL"] == pytest.approx(0.5)


# --- sacreBLEU / chrF ------------------------------------------------------------------

HYPS = ["the cat sat on the mat", "a quick brown fox jumps", "hello there my friend"]
REFS = ["the cat is sitting on the mat", "the quick brown fox jumped", "hello there friend"]


def test_bleu_identical_is_100(bleu):
    out = bleu.compute(predictions=REFS, references=[[r] for r in REFS])
    assert out["bleu"] == pytest.approx(100.0)
    assert out["bleu_precisions"] == pytest.approx([100.0] * 4)
    assert out["brevity_penalty"] == 1.0 and out["length_ratio"] == 1.0
    assert out["chrf"] == pytest.approx(100.0)


def test_bleu_and_chrf_match_sacrebleu(bleu):
    out = bleu.compute(predictions=HYPS, references=[[r] for r in REFS])
    assert set(out) == {"bleu", "bleu_precisions", "brevity_penalty", "length_ratio", "chrf"}
    direct = sacrebleu.corpus_bleu(HYPS, [REFS])
    assert out["bleu"] == pytest.approx(direct.score)
    assert 0 < out["bleu"] < 100
    assert out["bleu_precisions"] == pytest.approx(direct.precisions)
    assert out["brevity_penalty"] == pytest.approx(direct.bp)
    assert out["length_ratio"] == pytest.approx(direct.sys_len / direct.ref_len)
    assert out["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    # a plain string per prediction is one reference
    assert bleu.compute(predictions=HYPS, references=REFS) == out


def test_multiple_references_are_padded_with_the_last(bleu):
    refs = [[REFS[0], "the cat sat on a mat"], [REFS[1]], [REFS[2], "hello there my friend"]]
    out = bleu.compute(predictions=HYPS, references=refs)
    streams = [REFS, ["the cat sat on a mat", REFS[1], "hello there my friend"]]
    assert out["bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, streams).score)
    assert out["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, streams).score)
    single = bleu.compute(predictions=HYPS, references=[[r] for r in REFS])
    assert out["bleu"] > single["bleu"] and out["chrf"] > single["chrf"]
    with pytest.raises(ValueError, match="at least one reference"):
        bleu.compute(predictions=["x"], references=[[]])


def test_bleu_tokenize_is_passed_to_sacrebleu(bleu):
    hyps, refs = ["猫坐在垫子上"], [["猫坐在那个垫子上"]]
    zh = bleu.compute(predictions=hyps, references=refs, tokenize="zh")
    assert zh["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(hyps, [[refs[0][0]]], tokenize="zh").score
    )
    plain = bleu.compute(predictions=hyps, references=refs)  # 13a: each text is one word
    assert plain["bleu"] == pytest.approx(0.0) and zh["bleu"] > 10
