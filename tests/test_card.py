"""`hubtool card`: the card a run writes, its front matter, its checks, and the Hub's view."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, client_env, run_python
from tests.test_finetune import base_args, run

GOLDEN_RUN = ROOT / "tests" / "data" / "golden-run"
GOLDEN_CARD = ROOT / "tests" / "data" / "golden-card.md"
SHARED_CARDS = ROOT.parent / "shared" / "data" / "model-cards"
ENDPOINT = "https://huggingface.co"
HOSTILE = "x: y\n---\n# Injected\n<script>alert(1)</script> [click](javascript:alert(1)) | a | b |"


def front(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def headings(body: str) -> list[str]:
    out, fenced = [], False
    for line in body.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            out.append(line)
    return out


@pytest.fixture
def golden_run(tmp_path: Path) -> Path:
    """The fixed run directory, plus real (tiny) weights so the parameter count is known."""
    import torch
    from safetensors.torch import save_file

    run_dir = tmp_path / "golden-run"
    shutil.copytree(GOLDEN_RUN, run_dir)
    save_file(
        {"w": torch.zeros(10, 10), "b": torch.zeros(10)}, run_dir / "model" / "model.safetensors"
    )
    return run_dir


def render_golden(run_dir: Path, **settings) -> str:
    from hubtool.cards.base import BaseCard
    from hubtool.cards.stage import build_context, card_settings, read_run, render

    base = BaseCard(
        found=True,
        license="apache-2.0",
        languages=["en"],
        citation="@article{devlin2018bert,\n  title={BERT}\n}",
        limitations="Predictions can be biased.",
    )
    given = {
        "repo_id": "alice/reviews-bert",
        "intended_uses": "Sorting English product reviews by sentiment.",
        "out_of_scope": "Decisions about people.",
        "limitations": "Trained on short reviews.",
        "authors": ["Alice Martin"],
        "contact": "alice@example.org",
        **settings,
    }
    return render(build_context(read_run(run_dir), card_settings(given), base, ENDPOINT))


def test_golden_card(golden_run: Path):
    text = render_golden(golden_run)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN_CARD.write_text(text)
    assert text == GOLDEN_CARD.read_text(), "run with UPDATE_GOLDEN=1 and review the diff"


def test_card_front_matter_and_sections(golden_run: Path):
    meta, body = front(render_golden(golden_run))
    assert meta["language"] == ["en"]
    assert meta["license"] == "apache-2.0"
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-classification"
    assert meta["datasets"] == ["alice/reviews"]
    assert meta["base_model"] == "google-bert/bert-base-uncased"
    assert meta["base_model_relation"] == "finetune"
    assert meta["widget"] == [{"text": "I really enjoyed this, it was great."}]
    (result,) = meta["model-index"][0]["results"]
    assert result["dataset"] == {
        "name": "alice/reviews",
        "type": "alice/reviews",
        "config": "default",
        "split": "validation",
        "revision": "0123456789abcdef0123456789abcdef01234567",
    }
    values = {m["type"]: m["value"] for m in result["metrics"]}
    assert values == {
        "accuracy": 0.86,
        "precision_macro": 0.851,
        "recall_macro": 0.843,
        "f1_macro": 0.846,
        "matthews_correlation": 0.781,
        "loss": 0.412,
    }
    for section in (
        "## Model details",
        "### Intended uses",
        "### Out-of-scope uses",
        "## How to get started",
        "## Training data",
        "### Hyperparameters",
        "### Results during training",
        "## Evaluation",
        "### Per class",
        "### Confusion matrix",
        "### By input length",
        "## Bias, risks and limitations",
        "## Environmental impact",
        "## Technical specifications",
        "## Citation",
        "## How to reproduce",
    ):
        assert section in headings(body), section
    assert "| Accuracy | 0.8600 | 0.8200 – 0.8970 |" in body  # bootstrap interval shown
    assert "| **neutral** | 12 | 51 | 12 |" in body  # confusion matrix row
    assert "| Parameters | 110 |" in body
    assert "@article{devlin2018bert" in body and "@misc{reviews_bert_2026" in body
    assert "/home/alice" not in body  # the run's output_dir reduced to its name
    assert "More information needed" not in body


def test_missing_user_facts_are_said_plainly_and_strict_fails(golden_run: Path):
    from hubtool.cards.checks import check_card
    from hubtool.cards.stage import read_run

    text = render_golden(golden_run, intended_uses=None, authors=[], contact=None)
    assert "The authors have not stated the intended uses of this model." in text
    metrics = read_run(golden_run).metrics
    missing = ["intended uses", "authors", "contact"]
    lenient = check_card(text, metrics, [], missing, strict=False)
    assert lenient.ok and len(lenient.warnings) == 3
    strict = check_card(text, metrics, [], missing, strict=True)
    assert [p for p in strict.problems if "intended uses" in p]


def test_hostile_values_keep_front_matter_valid_and_body_inert(golden_run: Path):
    from hubtool.core.cardrules import validate_card

    run = json.loads((golden_run / "run.json").read_text())
    run["labels"] = [HOSTILE, "ok"]
    run["dataset"]["id"] = HOSTILE + " " + "long" * 2000
    run["data"]["label_distribution"] = {"train": {HOSTILE: 1}, "validation": {HOSTILE: 1}}
    (golden_run / "run.json").write_text(json.dumps(run))
    metrics = json.loads((golden_run / "metrics.json").read_text())
    metrics["details"]["per_class"] = {HOSTILE: metrics["details"]["per_class"]["neutral"]}
    metrics["details"]["confusion_matrix"]["labels"] = [HOSTILE, "b", "c"]
    (golden_run / "metrics.json").write_text(json.dumps(metrics))

    text = render_golden(golden_run, intended_uses=HOSTILE, limitations=HOSTILE, authors=[HOSTILE])
    assert validate_card(text)[0] == []
    meta, body = front(text)
    assert set(meta) >= {"license", "model-index", "widget"}
    assert meta["model-index"][0]["results"][0]["dataset"]["name"].startswith("x: y\n---")
    clean_headings = headings(render_golden(pristine_copy(golden_run)))
    assert headings(body) == clean_headings  # no heading injected
    assert "<script>" not in body and not re.search(r"(?<!\\)\]\(javascript:", body)
    assert "\n---\n" not in body.split("## How to get started")[0]  # no second front matter
    row_lines = [line for line in body.splitlines() if line.startswith("| ")]
    assert all(line.rstrip().endswith("|") for line in row_lines)  # no table broken by a newline


def pristine_copy(run_dir: Path) -> Path:
    """A pristine copy beside ``run_dir`` for comparisons."""
    clean = run_dir.parent / "clean"
    if not clean.exists():
        shutil.copytree(GOLDEN_RUN, clean)
    return clean


@pytest.mark.parametrize(
    ("name", "license_", "languages", "cites"),
    [
        ("camembert-base", "mit", ["fr"], "@inproceedings{martin2020camembert"),
        ("bert-base-uncased", "apache-2.0", ["en"], "@article{DBLP:journals/corr/abs-1810-04805"),
    ],
)
def test_real_base_cards_are_carried(tmp_path, golden_run, name, license_, languages, cites):
    path = SHARED_CARDS / f"{name}.README.md"
    if not path.exists():
        pytest.skip("../shared/data/model-cards is not here")
    from hubtool.cards.base import read_base_card
    from hubtool.cards.stage import build_context, card_settings, read_run, render

    base_dir = tmp_path / name
    base_dir.mkdir()
    shutil.copy(path, base_dir / "README.md")
    base = read_base_card(str(base_dir))
    assert (base.license, base.languages) == (license_, languages)
    assert base.citation and base.citation.startswith(cites)
    run = json.loads((golden_run / "run.json").read_text())
    del run["data"]["language_guess"]  # the data says nothing: the base card decides
    (golden_run / "run.json").write_text(json.dumps(run))
    text = render(build_context(read_run(golden_run), card_settings({}), base, ENDPOINT))
    meta, body = front(text)
    assert meta["license"] == license_ and meta["language"] == languages
    assert cites in body
    if name == "bert-base-uncased":
        assert "> Even if the training data used for this model" in body  # limitations quoted


def test_check_lists_every_problem(golden_run: Path):
    from hubtool.cards.checks import check_card
    from hubtool.cards.stage import read_run

    text = render_golden(golden_run, intended_uses="TODO see /home/alice/notes hf_" + "a" * 34)
    text = text.replace("value: 0.86\n", "value: 0.9\n").replace("- en\n", "- en-US\n", 1)
    report = check_card(text, read_run(golden_run).metrics, ["/home/alice/runs/reviews"], [], False)
    joined = "\n".join(report.problems)
    assert "placeholder text 'TODO'" in joined
    assert "local path '/home/'" in joined
    assert "token-like" in joined
    assert "model-index value of 'accuracy' is 0.9" in joined
    assert "language 'en-US'" in joined


# -- end to end: finetune writes the card; the local Hub accepts it ---------------------------
CARD_CONFIG = """
finetune:
  epochs: 2
card:
  intended_uses: Tell positive from negative toy sentences.
  out_of_scope: Anything real.
  limitations: A toy vocabulary of 30 words.
  authors: [Alice]
  contact: alice@example.org
  license: apache-2.0
"""


def passes_strict_check(run_dir: Path, tmp_path: Path, hub) -> None:
    """The run's card, with every user fact given, passes ``--check --strict`` with the local
    Hub's validate-yaml answering."""
    work = tmp_path / "strict"
    shutil.copytree(run_dir, work / "run")
    (work / "hubtool.yaml").write_text(CARD_CONFIG)
    proc = run(["card", "run", "--check", "--strict", "--config", "hubtool.yaml"], work,
               check=False, hub_url=hub.url)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "validate-yaml not reachable" not in proc.stderr


@pytest.fixture(scope="module")
def pushed_run(tmp_path_factory, checkpoint, datasets_dir, hub):
    """A tiny run fine-tuned with a card: section, its card written, pushed to the local Hub."""
    from huggingface_hub import HfApi

    work = tmp_path_factory.mktemp("cardrun")
    user = hub.user("carder")
    repo = f"{user.name}/toy-sentiment"
    (work / "hubtool.yaml").write_text(CARD_CONFIG)
    args = base_args(checkpoint, datasets_dir / "cls", "run", "--config", "hubtool.yaml")
    proc = run(args, work, hub_url=hub.url)
    assert "the card was not written" not in proc.stderr
    proc = run(
        ["card", "run", "--repo-id", repo, "--config", "hubtool.yaml"], work, hub_url=hub.url
    )
    assert "validate-yaml not reachable" not in proc.stderr  # the server checked it
    api = HfApi(endpoint=hub.url, token=user.token)
    api.create_repo(repo)
    api.upload_folder(repo_id=repo, folder_path=work / "run" / "model")
    return work, repo, user


def test_finetune_writes_card_that_hub_reads(pushed_run, hub):
    from huggingface_hub import HfApi

    work, repo, user = pushed_run
    metrics = json.loads((work / "run" / "metrics.json").read_text())["metrics"]
    info = HfApi(endpoint=hub.url, token=user.token).model_info(repo)
    results = {r.metric_type: r.metric_value for r in info.card_data.eval_results}
    assert results.keys() == metrics.keys() and "loss" in results
    assert all(abs(results[k] - metrics[k]) < 1e-5 for k in metrics)
    assert info.card_data.license == "apache-2.0"
    assert info.pipeline_tag == "text-classification"


def test_card_snippet_runs_against_the_hub(pushed_run, hub):
    work, repo, user = pushed_run
    card = (work / "run" / "model" / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert f'"{repo}"' in code
    proc = run_python(code, client_env(hub.url, work / "snippet_home", user.token), work)
    assert "'label': 'pos'" in proc.stdout or "'label': 'neg'" in proc.stdout


def test_card_command_check_and_strict_exit_codes(pushed_run, hub):
    work, _, _ = pushed_run
    before = (work / "run" / "model" / "README.md").read_text()
    proc = run(
        ["card", "run", "--check", "--intended-uses", "TODO"], work, check=False, hub_url=hub.url
    )
    assert proc.returncode == 7 and "placeholder text 'TODO'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (work / "run" / "model" / "README.md").read_text() == before  # nothing written
    proc = run(["card", "nowhere"], work, check=False, hub_url=hub.url)
    assert proc.returncode == 2 and "not a finished hubtool run" in proc.stderr


def test_fill_mask_card_measures_gendered_completions(tmp_path, hub):
    """A BERT whose vocabulary holds he/she: the probe's table reaches the card."""
    from tests import tiny

    ckpt = tiny.build_checkpoint(tmp_path / "ck", extra_words=["he", "she", "works", "nurse"])
    tiny.write_jsonl(tmp_path / "mlm" / "train.jsonl", [{"text": t} for t in tiny.texts(120)])
    run(
        base_args(ckpt, tmp_path / "mlm", "run", "--epochs", "1", "--task", "fill-mask"),
        tmp_path,
        hub_url=hub.url,
    )
    bias = json.loads((tmp_path / "run" / "bias.json").read_text())
    assert bias["kind"] == "gendered-completions" and len(bias["rows"]) == 20
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    meta, body = front(card)
    assert meta["widget"][0]["text"].count("[MASK]") == 1
    assert {m["type"] for m in meta["model-index"][0]["results"][0]["metrics"]} == {
        "loss",
        "perplexity",
    }
    assert "| nurse |" in body and "Mean male share" in body
    passes_strict_check(tmp_path / "run", tmp_path, hub)


def test_wheel_renders_a_card(tmp_path, golden_run, built_wheel):
    """The installed wheel (not the checkout) finds its templates and writes the card."""
    wheel = built_wheel
    target = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    code = (
        "import hubtool.cards.stage as c, sys; from pathlib import Path\n"
        "assert 'site' in c.__file__, c.__file__\n"
        f"s = c.card_settings({{'repo_id': 'alice/x'}})\n"
        f"print(c.render(c.build_context(c.read_run(Path({str(golden_run)!r})), s, "
        "c.read_base_card(''), 'https://huggingface.co')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "## Bias, risks and limitations" in proc.stdout and "model-index" in proc.stdout


def test_card_survives_a_corrupt_weights_file(golden_run: Path):
    (golden_run / "model" / "model.safetensors").write_bytes(b"\xff" * 64)
    meta, body = front(render_golden(golden_run))
    assert "| Parameters | – |" in body and meta["license"] == "apache-2.0"


def test_a_probe_template_with_a_stray_placeholder_is_refused_not_a_traceback(tmp_path):
    from hubtool.cards.bias import load_probe
    from hubtool.errors import ConfigError

    probe = tmp_path / "probe.yaml"
    probe.write_text(
        "groups: {a: [he], b: [she]}\noccupations: [nurse]\n"
        'templates: ["The {occupation} said {mask} was {mood}."]\n'
    )
    with pytest.raises(ConfigError, match="has a placeholder other than"):
        load_probe(None, probe)


def test_a_causal_lm_probe_whose_templates_all_start_with_the_blank_says_why(tmp_path):
    from hubtool.cards.bias import next_word_probe

    spec = {"groups": {"a": ["he"]}, "occupations": ["nurse"], "templates": ["{mask} is here."]}
    result = next_word_probe(tmp_path, spec)  # no model is loaded: nothing can be asked
    assert result["kind"] == "none" and "starts with its blank" in result["reason"]
