"""Causal-LM fine-tuning: a tiny Llama (with a ChatML template) and a tiny GPT-2 (without
one, as GPT-2 ships) built here; chat SFT that learns only the assistant's turns,
prompt/completion data, continued pretraining on plain text; cards with sample generations;
pushed to the local Hub and loaded back with ``pipeline("text-generation")``; resumed exactly
and run on two processes; bad conversations refused with the row named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import tiny
from tests.conftest import client_env
from tests.test_finetune import base_args, resumed_and_two_processes, run
from tests.test_qa_seq2seq import card_snippet, metrics_of, run_snippet, with_text

LEARN = ["--epochs", "16", "--lr", "1e-2", "--eval-every", "1000"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tg-data")
    tiny.write_jsonl(root / "chat" / "train.jsonl", tiny.chat_rows(160, system=True))
    tiny.write_jsonl(root / "chat" / "validation.jsonl", tiny.chat_rows(40, 1, system=True))
    tiny.write_jsonl(root / "pc" / "train.jsonl", tiny.prompt_completion_rows(160))
    tiny.write_jsonl(root / "pc" / "validation.jsonl", tiny.prompt_completion_rows(30, 1))
    tiny.write_jsonl(root / "text" / "train.jsonl", [{"text": t} for t in tiny.texts(300)])
    return root


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return tiny.build_decoder_checkpoint(tmp_path_factory.mktemp("llama") / "tiny-llama", "llama")


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> Path:
    return tiny.build_decoder_checkpoint(tmp_path_factory.mktemp("gpt2") / "tiny-gpt2", "gpt2")


@pytest.fixture(scope="module")
def trained_chat(llama, data, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("chat-run")
    run(base_args(llama, data / "chat", "chat", *LEARN), work)
    return work / "chat"


@pytest.fixture(scope="module")
def trained_pc(gpt2, data, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("pc-run")
    run(base_args(gpt2, data / "pc", "pc", *LEARN), work)
    return work / "pc"


def settings(**changes) -> SimpleNamespace:
    base = {
        "max_length": 64,
        "train_on_prompt": False,
        "chat_template": None,
        "model": "m",
        "packing": False,
        "eval_metrics": None,
    }
    return SimpleNamespace(**{**base, **changes})


def tokenized(checkpoint: Path, rows: list[dict], **changes):
    """The task's training features for ``rows`` (with the columns --task auto finds)."""
    import datasets

    from hubtool.tasks.text_generation import TextGeneration
    from hubtool.training.loop import load_tokenizer

    task, ds = TextGeneration(), datasets.Dataset.from_list(rows)
    cfg = settings(**changes)
    cols = task.columns(ds.column_names, SimpleNamespace(**vars(cfg), **NO_COLUMNS))
    tokenizer = load_tokenizer(str(checkpoint))  # as finetune loads it (padding included)
    task.check_rows(ds, "train", cols)
    features, _ = task.tokenize(ds, tokenizer, cfg, cols)
    return features, tokenizer


NO_COLUMNS = dict.fromkeys(
    ("text_column", "text_pair_column", "label_column", "source_column", "target_column")
)


def learned_text(features, tokenizer, row: int = 0) -> str:
    ids = [t for t in features[row]["labels"] if t != -100]
    return tokenizer.decode(ids, skip_special_tokens=False)


# -- what is learned ---------------------------------------------------------------------------
def test_chat_labels_cover_only_the_assistant_turn_unless_told(llama):
    rows = tiny.chat_rows(1, system=True)
    answer = rows[0]["messages"][-1]["content"]
    features, tok = tokenized(llama, rows)
    assert learned_text(features, tok) == f"{answer}<|im_end|>\n"  # its end of turn too
    everything, _ = tokenized(llama, rows, train_on_prompt=True)
    assert learned_text(everything, tok).startswith("<s><|im_start|>system\nanswer briefly")
    assert features[0]["input_ids"] == everything[0]["input_ids"]


def test_every_assistant_turn_of_a_conversation_is_learned(llama):
    turns = [
        {"role": "user", "content": "where does bob live"},
        {"role": "assistant", "content": "bob lives in london"},
        {"role": "user", "content": "where does carol live"},
        {"role": "assistant", "content": "carol lives in berlin"},
    ]
    features, tok = tokenized(llama, [{"messages": turns}], max_length=128)
    learned = learned_text(features, tok)
    assert learned == "bob lives in london<|im_end|>\ncarol lives in berlin<|im_end|>\n"


def test_prompt_completion_learns_the_completion_and_its_end(gpt2):
    features, tok = tokenized(gpt2, tiny.prompt_completion_rows(1))
    assert learned_text(features, tok).endswith("<|endoftext|>")
    assert "lives in" not in learned_text(features, tok)


def test_plain_text_is_cut_into_blocks_of_max_length(gpt2):
    rows = [{"text": t} for t in tiny.texts(200)]
    features, _ = tokenized(gpt2, rows, max_length=32)
    lengths = features["length"]
    assert set(lengths[:-1]) == {32} and 1 < lengths[-1] <= 32
    assert all(f["labels"] == f["input_ids"] for f in features.select(range(3)))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"messages": [{"role": "user", "content": "hi"}]}], "has no assistant message"),
        ([{"messages": [{"role": "robot", "content": "hi"}]}], "message 0 is not a chat message"),
        ([{"messages": "hello"}], "has no messages"),
        ([{"prompt": "alice lives in", "completion": " "}], "has an empty completion"),
    ],
)
def test_bad_conversations_are_refused_naming_the_row(llama, rows, message):
    from hubtool.errors import UsageError

    with pytest.raises(UsageError, match=f"Row 0 of split 'train'.*{message}"):
        tokenized(llama, rows)


def test_a_prompt_longer_than_max_length_is_refused(llama):
    from hubtool.errors import UsageError

    rows = [{"messages": [
        {"role": "user", "content": " ".join(["where does alice live"] * 20)},
        {"role": "assistant", "content": "paris"},
    ]}]  # fmt: skip
    with pytest.raises(UsageError, match="Example 0 has nothing left to learn once cut to 64"):
        tokenized(llama, rows)
    kept, _ = tokenized(llama, rows, train_on_prompt=True)  # its prompt is learned: kept
    assert kept[0]["length"] == 64 and -100 not in kept[0]["labels"]


def test_a_template_that_rewrites_earlier_turns_is_refused(llama, tmp_path):
    from hubtool.errors import UsageError

    rewriting = tmp_path / "rewrite.jinja"  # like templates that drop earlier reasoning
    rewriting.write_text(
        "{% for m in messages %}{% if loop.last %}{{ m['content'] }}{% else %}"
        "{{ m['content'][:3] }}{% endif %}\n{% endfor %}"
    )
    turns = [{"role": "user", "content": "where does bob live"},
             {"role": "assistant", "content": "bob lives in london"}]  # fmt: skip
    with pytest.raises(UsageError, match="renders the conversation differently turn by turn"):
        tokenized(llama, [{"messages": turns}], chat_template=str(rewriting))
    # the error's first suggestion works: every token learned, the prompt still found
    features, tok = tokenized(
        llama, [{"messages": turns}], chat_template=str(rewriting), train_on_prompt=True
    )
    cut = features[0]["prompt_length"]
    assert (
        tok.decode(features[0]["input_ids"][:cut]) == "whe"
    )  # where the last prompt parts from the full text


# -- whole runs ----------------------------------------------------------------------------------
def test_chat_sft_learns_the_answers_and_the_card_shows_samples(trained_chat):
    info = json.loads((trained_chat / "run.json").read_text())
    assert info["task"] == "text-generation"  # told from the messages column
    prep = info["data"]["preparation"]
    assert prep["format"] == "chat" and prep["chat_template"] == "the checkpoint's"
    doc = metrics_of(trained_chat)
    assert doc["metric_for_best"] == "perplexity" and doc["examples"] == 40
    assert doc["metrics"]["perplexity"] < 1.3
    samples = doc["details"]["samples"]
    assert len(samples) == 4 and all(s["prompt"].endswith("assistant\n") for s in samples)
    assert sum(s["generated"].strip() == s["reference"].strip() for s in samples) >= 3
    card = (trained_chat / "model" / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "### Sample generations" in card
    assert "only the assistant's turns were learned" in card
    assert "<|im_start|>system" in card  # the rendered conversation, as the model saw it
    assert "- messages:" in card  # the Hub's conversational widget
    assert "Generation settings saved with the model" in card and "Bias was not measured" in card


def test_a_checkpoint_without_a_chat_template_gets_one_saved_with_the_model(gpt2, data, tmp_path):
    run(base_args(gpt2, data / "chat", "out", "--max-steps", "4"), tmp_path)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["data"]["preparation"]["chat_template"].startswith("hubtool's plain template")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "out" / "model")
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "User: hi\nAssistant:"
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"  # GPT-2 has no padding token


def test_prompt_completion_model_pushed_and_loaded_with_a_pipeline(
    trained_pc, hub, alice, tmp_path
):
    doc = metrics_of(trained_pc)
    assert doc["metrics"]["perplexity"] < 1.5
    base = {b["name"]: b for b in doc["baselines"]}["base"]  # the checkpoint, untrained
    assert base["metrics"]["perplexity"] > 10 * doc["metrics"]["perplexity"]
    assert "| Perplexity |" in (trained_pc / "model" / "README.md").read_text()
    assert (
        "Base model (the checkpoint before fine-tuning"
        in (trained_pc / "model" / "README.md").read_text()
    )
    run_dir = tmp_path / "run"
    shutil.copytree(trained_pc, run_dir)
    repo = f"{alice.name}/pc"
    run(["push", str(run_dir), "--repo-id", repo], tmp_path,
        env_extra={"HF_TOKEN": alice.token}, hub_url=hub.url)  # fmt: skip
    assert hub.api(alice).model_info(repo).pipeline_tag == "text-generation"
    code = with_text(card_snippet(run_dir, repo), run_dir, "carol lives in")
    env = client_env(hub.url, tmp_path / "reader", alice.token)
    assert "carol lives in berlin" in run_snippet(code, tmp_path, env)


def test_plain_text_on_a_decoder_is_continued_pretraining(gpt2, data, tmp_path, hub):
    run(base_args(gpt2, data / "text", "out", "--max-steps", "6", "--max-length", "32"), tmp_path)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["task"] == "text-generation"  # --task auto: a decoder's plain text
    assert info["data"]["preparation"]["format"] == "text"
    doc = metrics_of(tmp_path / "out")
    assert doc["metrics"]["perplexity"] > 1 and doc["details"]["samples"]
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "cut into blocks of 32 tokens" in card
    from tests.test_card import passes_strict_check

    passes_strict_check(tmp_path / "out", tmp_path, hub)
    # blocks of joined text belong to no row: results cannot be broken down by a column
    args = base_args(gpt2, data / "text", "sliced", "--max-steps", "1", "--slices", "text")
    proc = run(args, tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "evaluated on blocks of joined text, not on rows" in proc.stderr
    assert not (tmp_path / "sliced" / "checkpoints").exists()


def test_evaluate_gives_the_training_perplexity_again(trained_chat, data, tmp_path):
    out = run(["evaluate", str(trained_chat / "model"), "--dataset", str(data / "chat")], tmp_path)
    doc = json.loads(out.stdout)
    trained = metrics_of(trained_chat)["metrics"]["perplexity"]
    assert doc["metrics"]["perplexity"] == pytest.approx(trained, rel=1e-3)


def test_chat_sft_resumes_exactly_and_runs_on_two_processes(llama, data, tmp_path):
    doc = resumed_and_two_processes(llama, data / "chat", tmp_path)
    assert doc["examples"] == 40 and "perplexity" in doc["metrics"]


def test_an_encoder_is_refused_for_text_generation_with_searchs_reason(checkpoint, data, tmp_path):
    args = base_args(checkpoint, data / "chat", "out", "--task", "text-generation")
    proc = run(args, tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is an encoder: hubtool trains text-generation with decoder-only" in proc.stderr


@pytest.mark.parametrize(
    ("arch", "model_type", "level"),
    [
        ("GPT2LMHeadModel", "gpt2", "ready"),
        ("LlamaForCausalLM", "llama", "ready"),
        ("LlamaModel", "llama", "base"),
        ("BertForMaskedLM", "bert", "no"),
        ("T5ForConditionalGeneration", "t5", "no"),
    ],
)
def test_search_fit_says_what_finetune_will_do(arch, model_type, level):
    from hubtool import tasks

    fit = tasks.fit("text-generation", None, [arch], model_type)
    assert fit.level == level, fit.how


def test_the_gender_probe_asks_a_causal_lm_for_the_next_word(trained_pc, tmp_path):
    """The fill-mask probe, asked as a causal LM can answer it: a probe whose "groups" are
    the homes the model learned shows it measures what the model does."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_pc, run_dir)
    probe = tmp_path / "homes.yaml"
    probe.write_text(
        "language: en\ngroups:\n  paris: [paris]\n  berlin: [berlin]\n"
        'templates: ["{occupation} lives in {mask}.", "{mask} is where {occupation} lives."]\n'
        "occupations: [alice, carol]\n"
    )
    run(["card", str(run_dir), "--bias-probe", str(probe)], tmp_path)
    bias = json.loads((run_dir / "bias.json").read_text())
    assert bias["kind"] == "gendered-completions" and bias["position"] == "next word"
    assert bias["templates"] == ["{occupation} lives in"]  # one opening before the blank
    share = {r["occupation"]: r["paris_share"] for r in bias["rows"]}
    assert share["alice"] > 0.9 and share["carol"] < 0.1  # alice lives in paris, carol not
    card = (run_dir / "model" / "README.md").read_text()
    assert "as the next word after the opening of 1 en occupation templates" in card
    assert "The model writes text: it can state falsehoods" in card


# -- packing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_packed_rows_give_the_padded_batchs_loss(kind, llama, gpt2):
    import torch
    from transformers import AutoModelForCausalLM

    from hubtool.tasks.text_generation import (
        PackedCausalBatches,
        PaddedCausalBatches,
        keeps_packed_apart,
    )

    model = AutoModelForCausalLM.from_pretrained(llama if kind == "llama" else gpt2).eval()
    assert keeps_packed_apart(model)
    features, tok = tokenized(llama if kind == "llama" else gpt2, tiny.chat_rows(12, 4))
    rows = [dict(f) for f in features]
    padded = PaddedCausalBatches(tok.pad_token_id)(rows)
    packed = PackedCausalBatches(tok.pad_token_id, 64)(rows)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]  # fewer rows
    assert packed["input_ids"].shape[1] <= 64 and "attention_mask" not in packed
    with torch.inference_mode():
        same = model(**packed).loss, model(**padded).loss
    assert float(same[0]) == pytest.approx(float(same[1]), rel=1e-5)  # no example sees another


def test_packing_is_refused_for_a_model_that_mixes_packed_examples():
    import torch

    from hubtool.errors import UsageError
    from hubtool.tasks.text_generation import TextGeneration

    class Mixing(torch.nn.Module):  # every position sees every earlier one, position ids or not
        config = SimpleNamespace(vocab_size=10)

        def forward(self, input_ids, position_ids=None, use_cache=None):
            emb = torch.nn.functional.one_hot(input_ids, 10).float().cumsum(dim=1)
            return SimpleNamespace(logits=emb)

    cfg = settings(packing=True)
    with pytest.raises(UsageError, match="does not keep packed examples apart"):
        TextGeneration().check_model(Mixing(), cfg, {"format": "chat"})
    TextGeneration().check_model(Mixing(), cfg, {"format": "text"})  # blocks: nothing to pack


def test_a_packed_chat_run_trains_and_evaluates_one_example_per_row(llama, data, tmp_path):
    run(base_args(llama, data / "chat", "out", "--packing", "--max-steps", "4"), tmp_path)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["config"]["packing"] is True
    doc = metrics_of(tmp_path / "out")
    assert doc["examples"] == 40 and doc["metrics"]["perplexity"] > 1


def test_a_decoder_trains_a_classifier_padding_with_its_end_of_text_token(
    gpt2, datasets_dir, tmp_path
):
    """Search calls a decoder `base` for text-classification; GPT-2 ships no padding token."""
    run(base_args(gpt2, datasets_dir / "cls", "out", "--task", "text-classification",
                  "--max-steps", "6"), tmp_path)  # fmt: skip
    config = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert config["architectures"] == ["GPT2ForSequenceClassification"]
    assert config["pad_token_id"] == config["eos_token_id"]  # the head finds the last token
    code = (
        "from transformers import pipeline\n"
        f"pipe = pipeline('text-classification', model={str(tmp_path / 'out' / 'model')!r})\n"
        "print(len(pipe(['the cat sat', 'a good movie with alice in paris'], batch_size=2)))\n"
    )
    assert run_snippet(code, tmp_path) == "2"  # a padded batch of two


def test_eval_metrics_score_every_validation_generation(llama, data, tmp_path):
    scored = ["--eval-metrics", "rouge,sacrebleu", "--max-steps", "4"]
    run(base_args(llama, data / "chat", "out", *scored), tmp_path)
    doc = metrics_of(tmp_path / "out")
    assert {"rougeL", "bleu", "chrf", "perplexity"} <= set(doc["metrics"])
    assert len(doc["details"]["samples"]) == 4  # the card still shows four
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "ROUGE-L" in card and "sacreBLEU" in card


@pytest.mark.parametrize(
    ("task", "metrics", "message"),
    [
        ("text-generation", "no_such_module", "The evaluate module 'no_such_module' cannot be"),
        ("text-classification", "rouge", "--eval-metrics scores generated text"),
    ],
)
def test_eval_metrics_are_refused_before_training_when_they_cannot_apply(
    llama, data, datasets_dir, tmp_path, task, metrics, message
):
    dataset = data / "chat" if task == "text-generation" else datasets_dir / "cls"
    args = base_args(llama, dataset, "out", "--task", task, "--eval-metrics", metrics)
    proc = run(args, tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()  # nothing trained


@pytest.mark.parametrize("fixture", ["trained_chat", "trained_pc"])
def test_the_card_passes_the_hubs_rules_and_strict_checks(fixture, request, tmp_path, hub):
    from tests.test_card import passes_strict_check

    passes_strict_check(request.getfixturevalue(fixture), tmp_path, hub)
