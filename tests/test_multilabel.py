"""Multi-label text classification: a label column of lists trains a sigmoid head with a
tuned decision threshold, scored by micro/macro F1, subset accuracy and per-label scores,
carded, pushed, loaded back by a transformers pipeline, evaluated again and resumed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests import tiny
from tests.test_finetune import base_args, resumed_and_two_processes, run

LEARN = ["--lr", "5e-3", "--epochs", "30", "--warmup-ratio", "0.1", "--batch-size", "32"]


@pytest.fixture(scope="module")
def multi_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multi")
    tiny.write_jsonl(root / "tags" / "train.jsonl", tiny.multi_label_rows(300))
    tiny.write_jsonl(root / "tags" / "validation.jsonl", tiny.multi_label_rows(80, seed=7))
    return root / "tags"


@pytest.fixture(scope="module")
def trained(checkpoint, multi_data, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("multi-run")
    run(base_args(checkpoint, multi_data, "out", *LEARN), work)
    return work / "out"


def test_a_label_list_column_trains_a_multi_label_model_that_learns(trained):
    info = json.loads((trained / "run.json").read_text())
    assert info["task"] == "text-classification" and info["multi_label"] is True
    assert info["labels"] == ["animal", "feeling", "place"]
    doc = json.loads((trained / "metrics.json").read_text())
    m = doc["metrics"]
    # always predicting every label scores micro F1 0.667 here: this one learnt the groups
    assert m["f1_micro"] > 0.8 and m["subset_accuracy"] > 0.45
    assert {"f1_macro", "precision_micro", "recall_micro", "loss"} <= set(m)
    assert "accuracy" not in m and doc["metric_for_best"] == "f1_micro"
    assert set(doc["details"]["per_class"]) == {"animal", "feeling", "place"}
    threshold = doc["details"]["decision"]["threshold"]
    config = json.loads((trained / "model" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["multi_label_threshold"] == threshold and 0 < threshold < 1
    pairs = info["data"]["label_co_occurrence"]
    assert pairs and all(len(p["labels"]) == 2 and p["examples"] > 0 for p in pairs)


def test_the_card_says_what_a_multi_label_model_is(trained):
    card = (trained / "model" / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card
    assert "Subset accuracy" in card and "F1 (micro)" in card
    assert "Labels found together most often" in card
    assert "a label is predicted when its sigmoid score is at least" in card
    assert "top_k=None" in card  # the snippet shows every label's score


def test_a_transformers_pipeline_gives_independent_scores_per_label(trained):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(trained / "model"), top_k=None)
    out = pipe("the cat in paris")
    rows = out[0] if out and isinstance(out[0], list) else out
    scores = {r["label"]: r["score"] for r in rows}
    assert set(scores) == {"animal", "feeling", "place"}
    # a label is predicted at the threshold tuned on validation, saved with the model
    t = json.loads((trained / "model" / "config.json").read_text())["multi_label_threshold"]
    assert scores["animal"] >= t and scores["place"] >= t and scores["feeling"] < t
    assert sum(scores.values()) != pytest.approx(1.0)  # sigmoids, not one softmax


def test_evaluate_uses_the_threshold_tuned_in_training(trained, multi_data, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "metrics.json").unlink()
    done = run(["evaluate", str(copy), "--dataset", str(multi_data)], tmp_path)
    assert done.returncode == 0
    again = json.loads((copy / "metrics.json").read_text())
    first = json.loads((trained / "metrics.json").read_text())
    assert again["metrics"]["f1_micro"] == pytest.approx(first["metrics"]["f1_micro"], abs=1e-6)
    assert again["details"]["decision"]["threshold"] == first["details"]["decision"]["threshold"]


def test_a_missing_label_list_is_refused_naming_the_row(checkpoint, tmp_path):
    rows = tiny.multi_label_rows(30)
    rows[4]["labels"] = None
    tiny.write_jsonl(tmp_path / "bad" / "train.jsonl", rows)
    proc = run(base_args(checkpoint, tmp_path / "bad", "out"), tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "Row 4 of the train split has no label list" in proc.stderr


def test_multi_label_resumes_exactly_and_runs_on_two_processes(checkpoint, multi_data, tmp_path):
    doc = resumed_and_two_processes(checkpoint, multi_data, tmp_path)
    assert doc["examples"] == 80  # each validation example counted once over 2 processes
    assert "f1_micro" in doc["metrics"]


def test_a_pushed_multi_label_model_shows_its_scores_on_the_hub(trained, hub, alice, tmp_path):
    from huggingface_hub import ModelCard

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    repo = f"{alice.name}/tags"
    run(
        ["push", str(run_dir), "--repo-id", repo],
        tmp_path,
        env_extra={"HF_TOKEN": alice.token},
        hub_url=hub.url,
    )
    api = hub.api(alice)
    assert api.model_info(repo).pipeline_tag == "text-classification"
    card = ModelCard(Path(api.hf_hub_download(repo, "README.md")).read_text())
    results = card.data.eval_results or []
    names = {r.metric_type for r in results}
    assert {"f1_micro", "subset_accuracy"} <= names
    config = json.loads(Path(api.hf_hub_download(repo, "config.json")).read_text())
    assert config["problem_type"] == "multi_label_classification"


def test_several_0_1_columns_are_one_multi_label_set(trained, checkpoint, tmp_path):
    names = sorted(tiny.MULTI_LABELS)  # the list run's label order: the same training

    def columns(rows: list[dict]) -> list[dict]:
        return [{"text": r["text"], **{n: int(n in r["labels"]) for n in names}} for r in rows]

    tiny.write_jsonl(tmp_path / "cols" / "train.jsonl", columns(tiny.multi_label_rows(300)))
    tiny.write_jsonl(
        tmp_path / "cols" / "validation.jsonl", columns(tiny.multi_label_rows(80, seed=7))
    )
    run(base_args(checkpoint, tmp_path / "cols", "out", *LEARN), tmp_path)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["multi_label"] is True and info["data"]["label_columns"] == names
    assert info["labels"] == names  # in the columns' order
    # the same examples as label lists (the `trained` run): the same model and scores
    got = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert got == pytest.approx(json.loads((trained / "metrics.json").read_text())["metrics"])
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "each label is a 0/1 column of the data (animal, feeling, place)" in card
    # evaluate folds the same columns; two named columns only are refused as a label set
    done = run(["evaluate", str(tmp_path / "out"), "--dataset", str(tmp_path / "cols"),
                "--output", str(tmp_path / "again.json")], tmp_path)  # fmt: skip
    assert done.returncode == 0
    again = json.loads((tmp_path / "again.json").read_text())["metrics"]["f1_micro"]
    assert again == pytest.approx(json.loads((tmp_path / "out" / "metrics.json").read_text())[
        "metrics"]["f1_micro"], abs=1e-6)  # fmt: skip
    rows = columns(tiny.multi_label_rows(30))
    rows[5]["place"] = 2
    tiny.write_jsonl(tmp_path / "bad" / "train.jsonl", rows)
    proc = run(
        base_args(checkpoint, tmp_path / "bad", "bad", "--label-column", "animal,place"),
        tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "Row 5 has 2 in the label column 'place'" in proc.stderr


def test_the_card_passes_the_hubs_rules_and_strict_checks(trained, tmp_path, hub):
    from tests.test_card import passes_strict_check

    passes_strict_check(trained, tmp_path, hub)
