"""Results by slice (issue 17): each task's per-example statistics add up to its own metric,
slices are read from the rows' columns through the row each prediction came from, numbers
are cut into quartiles and rare values pooled, languages are told apart where the texts mix
them, and bad slice settings are refused in one paragraph."""

from __future__ import annotations

import math
import random

import pytest

from hubtool import tasks
from hubtool.errors import UsageError
from hubtool.tasks import Predictions
from hubtool.training import slicing


def _sum_all(task: str, p: Predictions, labels=None) -> dict[str, float]:
    import numpy as np

    stats = tasks.get(task).example_stats(p, labels)
    return {name: score(counts.sum(axis=0)) for name, (counts, score) in stats.items()} | {
        "_rows": {len(np.asarray(c)) for c, _ in stats.values()}
    }


def _cases() -> list[tuple[str, Predictions, list[str] | None]]:
    rng = random.Random(0)
    n = 40
    refs = [rng.randrange(3) for _ in range(n)]
    single = Predictions(
        "text-classification",
        [r if rng.random() < 0.7 else rng.randrange(3) for r in refs],
        refs,
        [rng.random() for _ in range(n)],
    )
    multi = Predictions(
        "text-classification",
        [[rng.random() for _ in range(4)] for _ in range(n)],
        [[int(rng.random() < 0.4) for _ in range(4)] for _ in range(n)],
        multi_label=True,
        threshold=0.45,
    )
    tags = ["O", "B-PER", "I-PER", "B-LOC"]
    seq_refs = [[rng.randrange(4) for _ in range(rng.randint(2, 9))] for _ in range(n)]
    seq_preds = [[t if rng.random() < 0.7 else rng.randrange(4) for t in s] for s in seq_refs]
    tokens = Predictions("token-classification", seq_preds, seq_refs)
    words = "the cat sat on a mat while the dog ran to the park".split()

    def sentence() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))

    golds = [[sentence()] if rng.random() < 0.8 else [] for _ in range(n)]
    answers = [g[0] if g and rng.random() < 0.5 else sentence() for g in golds]
    qa = Predictions("question-answering", answers, golds)
    texts = [sentence() for _ in range(n)]
    outputs = [t if rng.random() < 0.4 else sentence() for t in texts]
    summaries = Predictions("summarization", outputs, texts)
    translations = Predictions("translation", outputs, texts)
    counts = [rng.randint(1, 30) for _ in range(n)]
    causal = Predictions(
        "text-generation", losses=[c * rng.uniform(1, 4) for c in counts], counts=counts
    )
    return [
        ("text-classification", single, ["a", "b", "c"]),
        ("text-classification", multi, ["w", "x", "y", "z"]),
        ("token-classification", tokens, tags),
        ("question-answering", qa, None),
        ("summarization", summaries, None),
        ("translation", translations, None),
        ("text-generation", causal, None),
    ]


def _case_id(case) -> str:
    return case[0] + ("-multi" if case[1].multi_label else "")


@pytest.mark.parametrize("case", _cases(), ids=_case_id)
def test_per_example_statistics_add_up_to_the_tasks_own_metric(case):
    name, p, labels = case
    metrics = tasks.get(name).compute(p, labels)
    summed = _sum_all(name, p, labels)
    assert summed.pop("_rows") == {len(p.losses) or len(p.predictions)}
    assert summed, f"{name} slices nothing"
    for key, value in summed.items():
        assert value == pytest.approx(metrics[key], rel=1e-9, abs=1e-9), key


def test_fill_mask_predictions_belong_to_no_row():
    assert tasks.get("fill-mask").row_numbers(None, None, None) is None


def test_slices_follow_each_prediction_back_to_its_row():
    """Predictions come in evaluation order (length-grouped); the groups are the rows'."""
    refs = [0, 1, 1, 0, 1, 0]
    preds = [0, 1, 0, 0, 1, 1]  # right, right, wrong, right, right, wrong
    p = Predictions("text-classification", preds, refs, [0.1] * 6)
    p.rows = [5, 2, 0, 1, 3, 4]  # prediction i is of row rows[i]
    country = ["fr", "de", "de", "fr", "de", "fr"]  # by row
    task = tasks.get("text-classification")
    doc = slicing.by_slice(task, p, ["neg", "pos"], {"country": country})
    factors = {f["name"]: {s["value"]: s for s in f["slices"]} for f in doc["factors"]}
    # rows 5, 1, 4 are fr → predictions 0, 3, 5: right, right, wrong
    assert factors["country"]["fr"]["examples"] == 3
    assert factors["country"]["fr"]["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert factors["country"]["de"]["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert factors["label"]["neg"]["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert doc["all"]["metrics"]["accuracy"] == pytest.approx(4 / 6)
    low, high = doc["all"]["intervals"]["accuracy"]
    assert 0 <= low <= 4 / 6 <= high <= 1
    assert doc["resamples"] == 1000 and doc["level"] == 0.95


def test_intervals_narrow_as_slices_grow():
    rng = random.Random(1)
    refs = [rng.randrange(2) for _ in range(2000)]
    preds = [r if rng.random() < 0.8 else 1 - r for r in refs]
    p = Predictions("text-classification", preds, refs, [0.1] * 2000)
    p.rows = list(range(2000))
    groups = {"size": ["small" if i < 40 else "large" for i in range(2000)]}
    doc = slicing.by_slice(tasks.get("text-classification"), p, ["a", "b"], groups)
    size = {s["value"]: s for s in doc["factors"][1]["slices"]}
    width = {k: s["intervals"]["accuracy"][1] - s["intervals"]["accuracy"][0]
             for k, s in size.items()}  # fmt: skip
    assert width["small"] > 3 * width["large"]
    assert 0.76 < size["large"]["metrics"]["accuracy"] < 0.84
    assert [s["value"] for s in doc["factors"][1]["slices"]] == ["large", "small"]  # largest first


def test_numbers_are_cut_into_quartiles_and_rare_values_pooled():
    ages = list(range(1, 101))
    named = slicing.values_of(ages, "age")
    assert sorted(set(named)) == sorted({"≤ 25.75", "25.75 – 50.5", "50.5 – 75.25", "> 75.25"})
    assert named[0] == "≤ 25.75" and named[-1] == "> 75.25"
    assert slicing.values_of([1, 2, 2, None], "stars") == ["1", "2", "2", "(missing)"]
    words = [f"w{i % 20}" for i in range(200)] + ["w0"] * 50
    pooled = slicing.values_of(words, "source")
    assert len(set(pooled)) == slicing.MOST_VALUES and "(other)" in pooled
    assert pooled.count("w0") == 60
    long = slicing.values_of(["x" * 500, " spaced\n out ", ""], "note")
    assert len(long[0]) == slicing.VALUE_CHARS and long[1:] == ["spaced out", "(empty)"]
    order = [v for v, _ in slicing._slices(named)]
    assert order == ["≤ 25.75", "25.75 – 50.5", "50.5 – 75.25", "> 75.25"]


def test_a_column_of_lists_or_an_absent_column_is_refused():
    from datasets import Dataset

    ds = Dataset.from_dict({"text": ["a b", "c d"], "tags": [["x"], ["y"]], "src": ["p", "q"]})
    with pytest.raises(UsageError, match="holds lists"):
        slicing.group_values(ds, ("tags",), "text")
    with pytest.raises(UsageError, match="no column 'country'") as info:
        slicing.group_values(ds, ("country",), "text")
    assert "text, tags, src" in info.value.hint


def test_a_language_column_and_mixed_languages_are_factors():
    from datasets import Dataset

    english = "the cat is on the mat and it was happy with the dog"
    french = "le chat est sur la table et il est dans la maison avec une amie"
    german = "der Hund ist nicht mit dem Kind auf der Straße und das ist gut"
    rows = [english] * 30 + [french] * 25 + [german] * 3 + ["ok"] * 2
    guessed = slicing.group_values(Dataset.from_dict({"text": rows}), (), "text")
    values = guessed[slicing.GUESSED]
    assert values.count("en") == 30 and values.count("fr") == 25
    assert values.count("other") == 3 and values.count("undetermined") == 2
    one = slicing.group_values(Dataset.from_dict({"text": [english] * 40}), (), "text")
    assert one == {}  # one language: nothing to compare
    column = Dataset.from_dict({"text": rows[:4], "lang": ["en", "fr", "en", "fr"]})
    assert slicing.group_values(column, (), "text") == {"lang": ["en", "fr", "en", "fr"]}


def test_perplexity_is_lower_the_better_for_weaker_slices():
    from hubtool.cards.context import slice_facts

    doc = {
        "metrics": ["perplexity"],
        "level": 0.95,
        "resamples": 100,
        "all": {"examples": 10, "metrics": {"perplexity": 5.0},
                "intervals": {"perplexity": [4, 6]}},
        "factors": [
            {
                "name": "lang",
                "guessed": False,
                "slices": [
                    {"value": "fr", "examples": 5, "metrics": {"perplexity": 9.0},
                     "intervals": {"perplexity": [7.0, 11.0]}},
                    {"value": "en", "examples": 5, "metrics": {"perplexity": 3.0},
                     "intervals": {"perplexity": [2.0, 4.0]}},
                ],
            }
        ],
    }  # fmt: skip
    facts = slice_facts(doc, {"perplexity": "Perplexity"})
    assert [w["slice"]["value"] for w in facts["weaker"]] == ["fr"]
    assert not math.isnan(facts["all"]["metrics"]["perplexity"])


def test_lengths_are_factors_in_their_natural_order():
    lengths = [5, 40, 300, 20, 70, 8, 150, 33]
    refs = [0, 1, 0, 1, 0, 1, 0, 1]
    p = Predictions("text-classification", refs, refs, [0.1] * 8, lengths=lengths)
    doc = slicing.by_slice(tasks.get("text-classification"), p, ["a", "b"], None)
    (tokens,) = [f for f in doc["factors"] if f["name"] == "input tokens"]
    assert [s["value"] for s in tokens["slices"]] == [
        "1-16",
        "17-32",
        "33-64",
        "65-128",
        "129-256",
        ">256",
    ]
    qa = Predictions("question-answering", ["x", "y"], [["x"], ["z"]])
    qa.attributes = [
        {"context_words": 30, "question_words": 4},
        {"context_words": 700, "question_words": 4},
    ]
    doc = slicing.by_slice(tasks.get("question-answering"), qa, None, None)
    factors = {f["name"]: f for f in doc["factors"]}
    assert set(factors) == {"context words"}  # every question is 1-6 words: nothing to compare
    exact = {s["value"]: s["metrics"]["exact_match"] for s in factors["context words"]["slices"]}
    assert exact == {"1-64": 1.0, ">512": 0.0}


def test_an_unmeasured_card_slice_prints_the_command_that_measures_it():
    from pathlib import Path

    from hubtool.cards.inputs import CardSettings, RunFiles
    from hubtool.cards.stage import refuse_unmeasured_slices
    from hubtool.errors import ConfigError

    run = {"dataset": {"id": "alice/tweets", "config": "en", "validation": {"split": "dev"}}}
    files = RunFiles(Path("runs/x"), run, {"by_slice": {"factors": [{"name": "label"}]}})
    with pytest.raises(ConfigError) as info:
        refuse_unmeasured_slices(CardSettings(slices=("label", "country")), files)
    assert "names 'country'" in info.value.message
    assert (
        "hubtool evaluate runs/x --dataset alice/tweets --dataset-config en --split dev "
        "--slices label,country"
    ) in info.value.hint
    refuse_unmeasured_slices(CardSettings(slices=("label",)), files)  # measured: no refusal


def test_a_push_check_that_breaks_refuses_in_one_line(monkeypatch, capsys):
    import io

    from hubtool.hub import prereceive

    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(prereceive, "check_push", broken)
    monkeypatch.setattr("sys.stdin", io.StringIO("0 1 refs/heads/main\n"))
    assert prereceive.main() == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the push could not be checked (disk on fire)")
    assert "Traceback" not in err
