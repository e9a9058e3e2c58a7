"""Extractive question answering, summarization and translation: tiny BERT, T5 and BART
models trained on small data made here; trained, evaluated, carded, pushed to the local Hub,
loaded back with transformers (v5 has no pipelines for these tasks: the card's own snippet is
run), resumed, and run on two processes; bad input refused with the row named."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import tiny
from tests.conftest import client_env
from tests.test_finetune import base_args, resumed_and_two_processes, run

QA_LEARN = ["--epochs", "8"]
S2S_LEARN = ["--epochs", "10"]
TRANSLATE_LEARN = ["--epochs", "30", "--warmup-ratio", "0.1"]


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("qa-s2s-data")
    tiny.write_jsonl(root / "qa" / "train.jsonl", tiny.qa_rows(300, unanswerable=True))
    tiny.write_jsonl(root / "qa" / "validation.jsonl", tiny.qa_rows(60, 5, unanswerable=True))
    tiny.write_jsonl(root / "long" / "train.jsonl", tiny.qa_rows(300, words=50))
    tiny.write_jsonl(root / "long" / "validation.jsonl", tiny.qa_rows(60, 5, words=50))
    tiny.write_jsonl(root / "sum" / "train.jsonl", tiny.summary_rows(300))
    tiny.write_jsonl(root / "sum" / "validation.jsonl", tiny.summary_rows(60, 5))
    tiny.write_jsonl(root / "tr" / "train.jsonl", tiny.translation_rows(300))
    tiny.write_jsonl(root / "tr" / "validation.jsonl", tiny.translation_rows(60, 5))
    return root


@pytest.fixture(scope="module")
def t5(tmp_path_factory) -> Path:
    return tiny.build_seq2seq_checkpoint(tmp_path_factory.mktemp("t5") / "tiny-t5", "t5")


@pytest.fixture(scope="module")
def bart(tmp_path_factory) -> Path:
    return tiny.build_seq2seq_checkpoint(tmp_path_factory.mktemp("bart") / "tiny-bart", "bart")


@pytest.fixture(scope="module")
def trained_qa(checkpoint, data, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("qa-run")
    run(base_args(checkpoint, data / "qa", "qa", *QA_LEARN), work)
    return work / "qa"


@pytest.fixture(scope="module")
def trained_sum(t5, data, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("sum-run")
    run(base_args(t5, data / "sum", "sum", *S2S_LEARN), work)
    return work / "sum"


@pytest.fixture(scope="module")
def trained_tr(t5, data, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("tr-run")
    langs = ["--source-lang", "en", "--target-lang", "fr"]
    run(base_args(t5, data / "tr", "tr", *langs, *TRANSLATE_LEARN), work)
    return work / "tr"


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def card_snippet(run_dir: Path, repo: str) -> str:
    """The card's Python usage block."""
    card = (run_dir / "model" / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S)
    assert code, "the card has no Python snippet"
    assert f'"{repo}"' in code.group(1)
    return code.group(1)


def card_example(run_dir: Path) -> Any:
    """What the card's example and snippet use: made of the run's first validation row."""
    example = json.loads((run_dir / "run.json").read_text())["data"]["example"]
    assert example, "the run made no example of its data"
    # a text has its braces doubled for the card's mask formatting
    return example.format(mask="{mask}") if isinstance(example, str) else example


def with_text(code: str, run_dir: Path, text: str) -> str:
    """The card's snippet run on ``text`` instead of its example (inside its literal, so a
    source prefix stays)."""
    shown = json.dumps(card_example(run_dir))[1:-1]
    assert shown in code, "the snippet does not run the card's example"
    return code.replace(shown, json.dumps(text)[1:-1])


def qa_snippet_accuracy(code: str, run_dir: Path, cwd: Path, env: dict | None = None) -> float:
    """The card's QA snippet run on 12 answerable validation questions: the share it gets
    right (one script: the snippet once per question)."""
    rows = [r for r in tiny.qa_rows(60, 5) if r["answers"]["text"]][:12]
    shown = card_example(run_dir)
    question, context = json.dumps(shown["text"]), json.dumps(shown["context"])
    assert question in code and context in code, "the snippet does not run the card's example"
    script = "\n".join(
        code.replace(question, json.dumps(r["question"])).replace(context, json.dumps(r["context"]))
        for r in rows
    )
    answers = run_snippet(script, cwd, env).splitlines()
    return sum(a == r["answers"]["text"][0] for a, r in zip(answers, rows, strict=True)) / 12


def run_snippet(code: str, cwd: Path, env: dict | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env or client_env("http://127.0.0.1:9", cwd / "hf_home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


# -- question answering ------------------------------------------------------------------------
def test_question_answering_learns_spans_and_when_there_is_none(trained_qa):
    info = json.loads((trained_qa / "run.json").read_text())
    assert info["task"] == "question-answering"  # told from the question/context/answers
    assert info["data"]["preparation"] == {"doc_stride": 16, "unanswerable": 75}
    doc = metrics_of(trained_qa)
    m = doc["metrics"]
    assert doc["examples"] == 60 and doc["metric_for_best"] == "f1"
    # guessing "who" for every question, or always answering, stays far below these
    assert m["exact_match"] > 0.7 and m["f1"] >= m["exact_match"]
    assert m["no_answer_exact_match"] > 0.6 and m["has_answer_exact_match"] > 0.6
    assert doc["details"]["questions"]["unanswerable"] == 15
    parts = {row["part"] for row in doc["by_length"]}
    assert parts == {"context", "question"}
    config = json.loads((trained_qa / "model" / "config.json").read_text())
    assert config["qa_no_answer"] is True


def test_long_contexts_are_split_into_windows_and_answers_found_in_any(checkpoint, data, tmp_path):
    args = base_args(checkpoint, data / "long", "long", "--max-length", "32", *QA_LEARN)
    run(args, tmp_path)
    info = json.loads((tmp_path / "long" / "run.json").read_text())
    # more windows than examples: a batch of 16 windows, 300 examples
    assert info["steps"]["per_epoch"] > 300 / 16 * 1.5
    assert info["data"]["preparation"]["doc_stride"] == 8  # a quarter of the window
    doc = metrics_of(tmp_path / "long")
    assert doc["examples"] == 60  # examples, not windows
    assert doc["metrics"]["exact_match"] > 0.8
    config = json.loads((tmp_path / "long" / "model" / "config.json").read_text())
    assert config["qa_no_answer"] is False  # every question has an answer


def test_the_qa_card_has_the_hub_widget_shape_and_a_snippet_that_answers(
    trained_qa, data, tmp_path
):
    card = (trained_qa / "model" / "README.md").read_text()
    assert "pipeline_tag: question-answering" in card
    first = json.loads((data / "qa" / "validation.jsonl").read_text().splitlines()[0])
    # the widget asks the validation data's first question, with its context
    assert f"- text: {first['question']}\n  context: {first['context']}" in card
    assert "Exact match" in card and "F1 (token overlap)" in card
    assert "split into windows that share 16 tokens" in card
    assert "the model may answer with nothing" in card
    assert "| context | 1-64 |" in card  # by input length, per part
    code = card_snippet(trained_qa, "qa").replace('"qa"', json.dumps(str(trained_qa / "model")))
    assert qa_snippet_accuracy(code, trained_qa, tmp_path) >= 0.7  # as the evaluation found


def test_evaluate_gives_the_training_scores_again_with_intervals(trained_qa, data, tmp_path):
    out = tmp_path / "again.json"
    run(["evaluate", str(trained_qa), "--dataset", str(data / "qa"), "--bootstrap", "30",
         "--output", str(out)], tmp_path)  # fmt: skip
    again, first = json.loads(out.read_text()), metrics_of(trained_qa)
    assert again["metrics"] == pytest.approx(first["metrics"], abs=1e-6)
    low, high = again["confidence_intervals"]["f1"]
    assert low <= first["metrics"]["f1"] <= high


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"answer_start": [3]}, "Row 2 of split 'train': the answer"),
        ({"answer_start": []}, "Row 2 of split 'train' has answers"),
        (None, "Row 2 of split 'train' has answers"),
    ],
)
def test_a_bad_answer_is_refused_naming_the_row(checkpoint, tmp_path, change, message):
    rows = tiny.qa_rows(20)
    rows[2]["answers"] = {**rows[2]["answers"], **change} if change else "bob"
    tiny.write_jsonl(tmp_path / "bad" / "train.jsonl", rows)
    proc = run(base_args(checkpoint, tmp_path / "bad", "out"), tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "out" / "model").exists()


def test_a_doc_stride_too_large_for_the_window_is_refused(checkpoint, data, tmp_path):
    args = base_args(checkpoint, data / "qa", "out", "--max-length", "32", "--doc-stride", "20")
    proc = run(args, tmp_path, check=False)
    assert proc.returncode == 2 and "--doc-stride 8" in proc.stderr


def test_qa_resumes_exactly_and_counts_examples_once_on_two_processes(checkpoint, data, tmp_path):
    doc = resumed_and_two_processes(checkpoint, data / "qa", tmp_path)
    assert doc["examples"] == 60 and "exact_match" in doc["metrics"]


def test_a_pushed_qa_model_answers_when_loaded_from_the_hub(trained_qa, hub, alice, tmp_path):
    from huggingface_hub import ModelCard

    run_dir = tmp_path / "run"
    shutil.copytree(trained_qa, run_dir)
    repo = f"{alice.name}/qa"
    run(["push", str(run_dir), "--repo-id", repo], tmp_path,
        env_extra={"HF_TOKEN": alice.token}, hub_url=hub.url)  # fmt: skip
    api = hub.api(alice)
    assert api.model_info(repo).pipeline_tag == "question-answering"
    card = ModelCard(Path(api.hf_hub_download(repo, "README.md")).read_text())
    assert {"exact_match", "f1"} <= {r.metric_type for r in card.data.eval_results or []}
    env = client_env(hub.url, tmp_path / "reader", alice.token)
    assert qa_snippet_accuracy(card_snippet(run_dir, repo), run_dir, tmp_path, env) >= 0.7


# -- summarization and translation -------------------------------------------------------------
def test_summarization_learns_and_says_how_it_generated(trained_sum):
    info = json.loads((trained_sum / "run.json").read_text())
    assert info["task"] == "summarization"  # told from document/summary
    assert info["data"]["preparation"] == {"source_prefix": "summarize: "}  # a T5 checkpoint
    doc = metrics_of(trained_sum)
    m = doc["metrics"]
    assert doc["metric_for_best"] == "rougeL" and doc["examples"] == 60
    assert m["rougeL"] > 0.6 and {"rouge1", "rouge2", "rougeLsum", "loss"} <= set(m)
    gen = doc["details"]["generation"]
    assert 0 < gen["mean_generated_tokens"] <= gen["max_generated_tokens"] <= 128
    assert 0 < gen["generation_share"] <= 1
    assert doc["by_length"] and "rougeL" in doc["by_length"][0]
    config = json.loads((trained_sum / "model" / "config.json").read_text())
    assert config["source_prefix"] == "summarize: "


def test_the_summarization_card_and_its_snippet(trained_sum, tmp_path):
    card = (trained_sum / "model" / "README.md").read_text()
    assert "pipeline_tag: summarization" in card
    assert "ROUGE-L" in card and "Generated outputs average" in card
    assert "each preceded by the prefix `summarize:`" in card
    first = card_example(trained_sum)  # the validation data's first document
    assert f"- text: 'summarize: {first}" in card  # the widget keeps the prefix
    code = card_snippet(trained_sum, "sum").replace('"sum"', json.dumps(str(trained_sum / "model")))
    code = with_text(code, trained_sum, "the cat met alice in paris")
    out = run_snippet(code, tmp_path)
    assert "alice" in out or "paris" in out  # it names what the document names


def test_translation_pairs_prefix_languages_and_scores(trained_tr, t5, data, tmp_path):
    info = json.loads((trained_tr / "run.json").read_text())
    assert info["task"] == "translation"
    assert info["columns"]["text"] == "translation.en"
    assert info["data"]["preparation"] == {"source_prefix": "translate English to French: "}
    doc = metrics_of(trained_tr)
    assert doc["metric_for_best"] == "bleu" and {"bleu", "chrf"} <= set(doc["metrics"])
    assert "brevity_penalty" in doc["details"]["bleu_details"]  # a detail, not a score
    card = (trained_tr / "model" / "README.md").read_text()
    assert "language:\n- en\n- fr\n" in card and "pipeline_tag: translation" in card
    assert "sacreBLEU" in card and "chrF" in card
    # the same scores from evaluate, and far better than the untrained checkpoint's
    untrained = tmp_path / "untrained.json"
    run(["evaluate", str(t5), "--dataset", str(data / "tr"), "--task", "translation",
         "--source-lang", "en", "--target-lang", "fr", "--output", str(untrained)],
        tmp_path)  # fmt: skip
    before = json.loads(untrained.read_text())["metrics"]["chrf"]
    assert doc["metrics"]["chrf"] > before + 10


def test_translation_from_source_and_target_columns_with_bart(bart, tmp_path):
    rows = [{"src": r["translation"]["en"], "tgt": r["translation"]["fr"]}
            for r in tiny.translation_rows(120)]  # fmt: skip
    tiny.write_jsonl(tmp_path / "cols" / "train.jsonl", rows)
    args = ["--task", "translation", "--source-lang", "en", "--target-lang", "fr",
            "--max-steps", "6"]  # fmt: skip
    run(base_args(bart, tmp_path / "cols", "out", *args), tmp_path)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["columns"]["text"] == "src" and info["columns"]["label"] == "tgt"
    assert info["data"]["preparation"] == {"source_prefix": ""}  # BART takes no prefix
    assert "chrf" in metrics_of(tmp_path / "out")["metrics"]
    missing_pair = run(
        base_args(bart, tmp_path / "cols", "again", "--task", "translation"), tmp_path, check=False
    )
    assert missing_pair.returncode == 2 and "--source-lang and --target-lang" in missing_pair.stderr


def test_bart_summarization_learns_beyond_its_start(bart, data, tmp_path):
    run(base_args(bart, data / "sum", "out", *S2S_LEARN), tmp_path)
    trained = metrics_of(tmp_path / "out")["metrics"]["rougeL"]
    untrained = tmp_path / "untrained.json"
    run(["evaluate", str(bart), "--dataset", str(data / "sum"), "--task", "summarization",
         "--output", str(untrained)], tmp_path)  # fmt: skip
    assert trained > json.loads(untrained.read_text())["metrics"]["rougeL"] + 0.15


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"document": "the cat", "summary": "  "}, "has an empty target in 'summary'"),
        ({"document": 5, "summary": "bob"}, "has a non-text (5) source in 'document'"),
    ],
)
def test_empty_or_non_text_targets_are_refused_naming_the_row(t5, tmp_path, row, message):
    rows = tiny.summary_rows(20)
    rows[3] = row
    tiny.write_jsonl(tmp_path / "bad" / "train.jsonl", rows)
    proc = run(base_args(t5, tmp_path / "bad", "out"), tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"Row 3 of split 'train' {message}" in proc.stderr


def test_a_decoder_only_checkpoint_is_refused_for_seq2seq_with_searchs_reason(data, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tiny.build_checkpoint(tmp_path / "gpt")
    (folder / "model.safetensors").unlink()
    (folder / "config.json").unlink()
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=150)).save_pretrained(
        folder
    )
    proc = run(base_args(folder, data / "sum", "out"), tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "GPT2LMHeadModel is a decoder-only model: hubtool trains summarization" in proc.stderr
    assert "hubtool search --task summarization" in proc.stderr


def test_seq2seq_resumes_exactly_and_runs_on_two_processes(t5, data, tmp_path):
    doc = resumed_and_two_processes(t5, data / "sum", tmp_path)
    assert doc["examples"] == 60 and "rougeL" in doc["metrics"]


def test_a_pushed_translation_model_generates_when_loaded_from_the_hub(
    trained_tr, hub, alice, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_tr, run_dir)
    repo = f"{alice.name}/tr"
    run(["push", str(run_dir), "--repo-id", repo], tmp_path,
        env_extra={"HF_TOKEN": alice.token}, hub_url=hub.url)  # fmt: skip
    info = hub.api(alice).model_info(repo)
    assert info.pipeline_tag == "translation"
    assert {"en", "fr"} <= set(info.card_data.language or [])
    code = card_snippet(run_dir, repo)
    assert "translate English to French: " in code
    env = client_env(hub.url, tmp_path / "reader", alice.token)
    assert run_snippet(code, tmp_path, env)  # it generates some text


# -- search fit --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("task", "tag", "arch", "model_type", "level"),
    [
        ("question-answering", None, "BertForMaskedLM", "bert", "base"),
        ("question-answering", None, "RobertaForQuestionAnswering", "roberta", "ready"),
        ("question-answering", None, "GPT2LMHeadModel", "gpt2", "no"),
        ("summarization", None, "T5ForConditionalGeneration", "t5", "ready"),
        ("summarization", None, "T5Model", "t5", "base"),
        ("summarization", "summarization", "BartForConditionalGeneration", "bart", "ready"),
        ("summarization", None, "GPT2LMHeadModel", "gpt2", "no"),
        ("summarization", None, "BertForMaskedLM", "bert", "no"),
        ("translation", None, "MarianMTModel", "marian", "ready"),
        ("translation", None, "MT5ForConditionalGeneration", "mt5", "ready"),
        ("translation", None, "LlamaForCausalLM", "llama", "no"),
    ],
)
def test_search_fit_says_what_finetune_will_do(task, tag, arch, model_type, level):
    from hubtool import tasks

    fit = tasks.fit(task, tag, [arch], model_type)
    assert fit.level == level, fit.how
    assert arch in fit.how or fit.how == f"the Hub lists it for {task}"


def test_cards_check_and_release_gates_name_metrics_the_tasks_compute(
    trained_qa, trained_sum, trained_tr, tmp_path
):
    from hubtool import tasks
    from hubtool.errors import GateFailed
    from hubtool.publish.release import gate, parse_requirement

    for run_dir in (trained_qa, trained_sum, trained_tr):
        doc = metrics_of(run_dir)
        assert run(["card", str(run_dir), "--check"], tmp_path).returncode == 0
        requirement = parse_requirement(tasks.get(doc["task"]).release_for(False))
        assert requirement.metric in doc["metrics"]  # `hubtool ci init`'s default gate
        try:
            gate(doc["metrics"], [requirement])
        except GateFailed as refused:  # a tiny model may fail it, but never for a lack of it
            assert "has no metric" not in str(refused)


@pytest.fixture(scope="module")
def nllb(tmp_path_factory) -> Path:
    return tiny.build_nllb_checkpoint(tmp_path_factory.mktemp("nllb") / "tiny-nllb")


def test_language_codes_are_found_from_the_languages_users_name(nllb):
    from transformers import AutoTokenizer

    from hubtool.errors import UsageError
    from hubtool.tasks.seq2seq import code_for, language_codes

    codes = language_codes(AutoTokenizer.from_pretrained(nllb))
    assert codes == sorted(tiny.NLLB_CODES)
    assert [code_for(codes, x) for x in ("en", "french", "fra", "deu_Latn")] == [
        "eng_Latn", "fra_Latn", "fra_Latn", "deu_Latn"
    ]  # fmt: skip
    assert code_for(["en_XX", "fr_XX"], "fr") == "fr_XX"  # mBART
    assert code_for(["__en__", "__fr__"], "en") == "__en__"  # M2M100
    with pytest.raises(UsageError, match="several codes for Chinese: zho_Hans, zho_Hant"):
        code_for(codes, "zh")
    with pytest.raises(UsageError, match="no language code for Spanish"):
        code_for(codes, "es")
    assert language_codes(AutoTokenizer.from_pretrained(tiny.build_seq2seq_checkpoint(
        nllb.parent / "t5", "t5"))) == []  # fmt: skip


def test_a_tokenizer_with_language_codes_trains_with_them_and_generation_starts_with_the_target(
    nllb, data, tmp_path
):
    langs = ["--source-lang", "en", "--target-lang", "fr"]
    run(base_args(nllb, data / "tr", "out", *langs, "--max-steps", "6"), tmp_path)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    prep = info["data"]["preparation"]
    assert prep["language_codes"] == {"source": "eng_Latn", "target": "fra_Latn"}
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "out" / "model")
    assert (tok.src_lang, tok.tgt_lang) == ("eng_Latn", "fra_Latn")  # saved with the model
    encoded = tok("the cat", text_target="le chat")
    assert tok.convert_ids_to_tokens(encoded["input_ids"])[0] == "eng_Latn"
    assert tok.convert_ids_to_tokens(encoded["labels"])[0] == "fra_Latn"
    generation = json.loads((tmp_path / "out" / "model" / "generation_config.json").read_text())
    assert generation["forced_bos_token_id"] == tok.convert_tokens_to_ids("fra_Latn")
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert f"forced\\_bos\\_token\\_id {generation['forced_bos_token_id']}" in card
    code = (
        card_snippet(tmp_path / "out", "out")
        .replace('"out"', json.dumps(str(tmp_path / "out" / "model")))
        .replace("skip_special_tokens=True", "skip_special_tokens=False")
    )
    assert "fra_Latn" in run_snippet(code, tmp_path)  # the card's snippet generates French


def test_summarization_with_language_codes_needs_the_datas_language(nllb, data, tmp_path):
    proc = run(base_args(nllb, data / "sum", "out", "--max-steps", "2"), tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "marks languages with codes of its own, so summarization needs" in proc.stderr
    assert "--source-lang" in proc.stderr


def test_a_question_too_long_for_its_window_is_refused_quoting_it(checkpoint, tmp_path):
    rows = tiny.qa_rows(20)
    rows[7]["question"] = " ".join(["who is there"] * 12)
    tiny.write_jsonl(tmp_path / "long-q" / "train.jsonl", rows)
    args = base_args(checkpoint, tmp_path / "long-q", "out", "--max-length", "32")
    proc = run(args, tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "The question 'who is there who is there" in proc.stderr
    assert "leave no room for its context" in proc.stderr and "--max-length" in proc.stderr


@pytest.mark.parametrize("fixture", ["trained_qa", "trained_sum", "trained_tr"])
def test_the_card_passes_the_hubs_rules_and_strict_checks(fixture, request, tmp_path, hub):
    from tests.test_card import passes_strict_check

    passes_strict_check(request.getfixturevalue(fixture), tmp_path, hub)
