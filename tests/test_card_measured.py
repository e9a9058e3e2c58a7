"""What a card measures beyond the metrics (issue 17): baselines beside every metric, the data
shown (tokens per example, validation rows, a widget example from the data), the settings
off hubtool's defaults, the best evaluation in bold, emissions through codecarbon, APA beside
BibTeX, links that do not depend on the Hub's address, and plain words for a model that
predicts one class or a probe that measured nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_card import CARD_CONFIG, front, render_golden
from tests.test_finetune import base_args, run

SLICED = CARD_CONFIG + "  slices: [source, position]\n"


def sliced_rows(rows: list[dict]) -> list[dict]:
    """The rows with a column that follows the label (so its slices must be the label's:
    a prediction traced to the wrong row would break that) and a number per row."""
    return [
        {**r, "source": "forum" if r["label"] == "pos" else "news", "position": i}
        for i, r in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def carded(tmp_path_factory, checkpoint, datasets_dir, hub) -> Path:
    """A tiny classifier trained with two settings changed and its results broken down by
    two columns of the data (card.slices), its card written through the local Hub
    (validate-yaml answers)."""
    from tests import tiny

    work = tmp_path_factory.mktemp("measured")
    (work / "hubtool.yaml").write_text(SLICED)
    for split in ("train", "validation"):
        rows = rows_of(datasets_dir / "cls" / f"{split}.jsonl")
        tiny.write_jsonl(work / "data" / f"{split}.jsonl", sliced_rows(rows))
    args = ["--config", "hubtool.yaml", "--max-steps", "45", "--eval-every", "15"]
    args += ["--lr", "2e-3", "--emissions", "--emissions-country", "FRA"]
    run(base_args(checkpoint, work / "data", "run", *args), work, hub_url=hub.url)
    user = hub.user("measurer")
    proc = run(
        ["card", "run", "--repo-id", f"{user.name}/measured", "--config", "hubtool.yaml",
         "--check", "--strict"],
        work, hub_url=hub.url,
    )  # fmt: skip
    assert "validate-yaml not reachable" not in proc.stderr  # the server checked it
    return work / "run"


def card_of(run_dir: Path) -> tuple[dict, str]:
    return front((run_dir / "model" / "README.md").read_text())


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def work_data(run_dir: Path) -> Path:
    return run_dir.parent / "data"


def test_baselines_sit_beside_every_metric(carded, datasets_dir):
    doc = json.loads((carded / "metrics.json").read_text())
    baselines = {b["name"]: b for b in doc["baselines"]}
    validation = rows_of(work_data(carded) / "validation.jsonl")
    train = rows_of(work_data(carded) / "train.jsonl")
    majority = max({"pos", "neg"}, key=[r["label"] for r in train].count)
    share = [r["label"] for r in validation].count(majority) / len(validation)
    assert baselines["majority"]["metrics"]["accuracy"] == pytest.approx(share)
    assert baselines["majority"]["metrics"]["matthews_correlation"] == 0
    assert 0.35 < baselines["uniform"]["metrics"]["accuracy"] < 0.65  # two classes
    assert "base" not in baselines  # the head is new: the checkpoint had nothing to score
    _, body = card_of(carded)
    assert f"| Metric | Value | Always {majority} | Uniform random |" in body
    assert f"| Accuracy | {doc['metrics']['accuracy']:.4f} | {share:.4f} |" in body


def test_the_data_is_shown_and_the_widget_is_a_validation_row(carded, datasets_dir):
    meta, body = card_of(carded)
    first = rows_of(work_data(carded) / "validation.jsonl")[0]
    assert meta["widget"] == [{"text": first["text"]}]
    assert "I really enjoyed this" not in body
    assert "The first 3 rows of the validation split" in body
    assert f"| {first['text']} | {first['label']} |" in body
    lengths = json.loads((carded / "run.json").read_text())["data"]["token_lengths"]
    v = lengths["validation"]
    assert 0 < v["min"] <= v["median"] <= v["p95"] <= v["max"] <= 64
    assert f"| validation | {v['min']} | {v['median']} | {v['p95']} | {v['max']} |" in body


def test_show_samples_false_keeps_the_rows_out(carded, tmp_path, hub):
    run_dir = tmp_path / "run"
    shutil.copytree(carded, run_dir)
    (tmp_path / "quiet.yaml").write_text("card:\n  show_samples: false\n")
    run(["card", "run", "--config", "quiet.yaml"], tmp_path, hub_url=hub.url)
    meta, body = card_of(run_dir)
    assert "rows of the validation split" not in body
    assert meta["widget"] == [{"text": "I really enjoyed this, it was great."}]
    (tmp_path / "bad.yaml").write_text("card:\n  show_samples: maybe\n")
    proc = run(["card", "run", "--config", "bad.yaml"], tmp_path, check=False, hub_url=hub.url)
    assert proc.returncode == 2 and "show_samples' must be true or false" in proc.stderr


def test_settings_off_the_defaults_are_apart_and_the_best_row_is_bold(carded):
    _, body = card_of(carded)
    changed = body.split("Set for this run")[1].split("Everything else")[0]
    assert "| lr | 0.002 | 5e-05 |" in changed and "| max\\_steps | 45 | – |" in changed
    defaults = body.split("Everything else at hubtool's defaults")[1].split("Trained for")[0]
    assert "| batch\\_size | 16 |" in defaults and "| lr |" not in defaults
    best = json.loads((carded / "metrics.json").read_text())["step"]
    assert f"| **{best}** |" in body and "The row in bold is the best evaluation" in body


def test_emissions_are_measured_and_in_the_metadata(carded):
    emissions = json.loads((carded / "run.json").read_text())["emissions"]
    assert emissions["measured"] and emissions["energy_kwh"] > 0
    assert emissions["country"] == "France" and emissions["codecarbon"]
    meta, body = card_of(carded)
    co2 = meta["co2_eq_emissions"]
    assert co2["emissions"] == pytest.approx(emissions["emissions_kg"] * 1000, rel=1e-3)
    assert co2["source"].startswith("codecarbon") and co2["training_type"] == "fine-tuning"
    assert co2["geographical_location"] == "France"
    assert "| Emissions |" in body and "the carbon intensity of France" in body
    assert emissions["method"] in body.replace("\\'", "'")  # measured or estimated: said


def test_results_are_broken_down_by_the_named_columns_and_the_label(carded):
    doc = json.loads((carded / "metrics.json").read_text())["by_slice"]
    factors = {f["name"]: {s["value"]: s for s in f["slices"]} for f in doc["factors"]}
    assert set(factors) == {"label", "source", "position"}
    # source follows the label row by row: traced to the right rows, the slices are equal
    for label, source in (("pos", "forum"), ("neg", "news")):
        assert factors["source"][source] == {**factors["label"][label], "value": source}
    assert sorted(factors["position"]) == sorted(
        ["≤ 14.75", "14.75 – 29.5", "29.5 – 44.25", "> 44.25"]
    )
    assert sum(s["examples"] for s in factors["position"].values()) == 60
    accuracy = json.loads((carded / "metrics.json").read_text())["metrics"]["accuracy"]
    assert doc["all"]["metrics"]["accuracy"] == pytest.approx(accuracy)
    for piece in (s for f in factors.values() for s in f.values()):
        low, high = piece["intervals"]["accuracy"]
        assert low <= piece["metrics"]["accuracy"] <= high
    _, body = card_of(carded)
    table = body.split("### By slice")[1].split("## Bias")[0]
    assert "grouped by label, source, position" in table and "1000 bootstrap resamples" in table
    forum = factors["source"]["forum"]
    lo, hi = forum["intervals"]["accuracy"]
    assert (
        f"| source | forum | {forum['examples']} | {forum['metrics']['accuracy']:.4f} "
        f"({lo:.4f} – {hi:.4f}) |"
    ) in table


def test_card_slices_the_run_did_not_measure_are_refused(carded, tmp_path, hub):
    run_dir = tmp_path / "run"
    shutil.copytree(carded, run_dir)
    (tmp_path / "more.yaml").write_text(SLICED.replace("[source, position]", "[source, topic]"))
    proc = run(["card", "run", "--config", "more.yaml"], tmp_path, check=False, hub_url=hub.url)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "card.slices names 'topic', which the run's evaluation did not" in proc.stderr
    assert "hubtool evaluate run --dataset" in proc.stderr
    assert "--slices source,topic" in proc.stderr


def test_citations_never_name_a_local_port(carded):
    _, body = card_of(carded)
    assert "127.0.0.1" not in body and "localhost" not in body
    assert "APA: Alice. (" in body and "Hugging Face Hub repository" in body


def test_a_one_class_model_and_a_flat_probe_are_said_plainly(golden_run: Path):
    metrics = json.loads((golden_run / "metrics.json").read_text())
    metrics["details"]["one_class"] = "pos"
    (golden_run / "metrics.json").write_text(json.dumps(metrics))
    rows = [{"occupation": o, "male": 0.2, "female": 0.2, "male_share": 0.5} for o in "abc"]
    probe = {
        "kind": "gendered-completions",
        "language": "en",
        "templates": ["x"] * 3,
        "groups": {"male": ["he"], "female": ["she"]},
        "rows": rows,
        "mean_share": 0.5,
    }
    (golden_run / "bias.json").write_text(json.dumps(probe))
    body = front(render_golden(golden_run))[1]
    assert "**The model predicts pos for every one of the" in body
    assert "The probe could not measure anything on this model" in body
    assert "| a |" not in body  # no table of identical rows


def test_compute_names_the_one_class_a_model_predicts():
    from hubtool import tasks
    from hubtool.tasks.base import Predictions

    p = Predictions("text-classification", [1, 1, 1, 1], [0, 1, 0, 1])
    assert tasks.get("text-classification").compute(p, ["neg", "pos"])["one_class"] == "pos"
    p = Predictions("text-classification", [0, 1, 1, 1], [0, 1, 0, 1])
    assert "one_class" not in tasks.get("text-classification").compute(p, ["neg", "pos"])


@pytest.fixture
def golden_run(tmp_path: Path) -> Path:
    from tests.test_card import GOLDEN_RUN

    run_dir = tmp_path / "golden-run"
    shutil.copytree(GOLDEN_RUN, run_dir)
    return run_dir
