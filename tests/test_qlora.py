"""QLoRA (``--peft lora --quantize 4bit|8bit``): the frozen base loaded by bitsandbytes, which
runs on this CPU too. The adapter trained on it learns, is saved without base weights with its
new head kept in full precision, is measured again on the quantized base by ``evaluate``, and
``--merge`` merges it into the base loaded in full precision (no quantization left in the
published model). Models are 64 wide: bitsandbytes' CPU kernels pack weights in blocks of 64."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import tiny
from tests.test_finetune import base_args, resumed_and_two_processes, run
from tests.test_lora import logits, model_files
from tests.test_qa_seq2seq import metrics_of

pytest.importorskip("bitsandbytes")

QLORA = ["--peft", "lora", "--lora-target-modules", "all-linear", "--lora-r", "16", "--seed", "3"]
LEARN = ["--epochs", "14", "--lr", "5e-3"]
TEXT = "the movie was good and great"


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    return tiny.build_checkpoint(tmp_path_factory.mktemp("wide") / "bert64", width=64)


@pytest.fixture(scope="module")
def qlora_cls(wide, datasets_dir, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("qlora")
    run(base_args(wide, datasets_dir / "cls", "run", *QLORA, *LEARN, "--quantize", "4bit"), work)
    return work / "run"


def test_a_4bit_base_trains_an_adapter_that_learns(qlora_cls):
    adapter = json.loads((qlora_cls / "run.json").read_text())["adapter"]
    assert adapter["quantization"]["bits"] == 4 and "nf4" in adapter["quantization"]["type"]
    assert adapter["quantization"]["library"].startswith("bitsandbytes ")
    assert metrics_of(qlora_cls)["metrics"]["accuracy"] >= 0.9  # it learns on the 4-bit base
    # no faster forward is checked on a quantized base: bitsandbytes repacks its CPU weights
    # for inference at the check's eval-mode forward, and training then fails on them
    assert json.loads((qlora_cls / "run.json").read_text())["speed"]["task_forward"] is None
    assert not model_files(qlora_cls) & {"config.json", "model.safetensors"}  # adapter only
    from safetensors import safe_open

    with safe_open(qlora_cls / "model" / "adapter_model.safetensors", "pt") as fh:
        names = list(fh.keys())
        head = [fh.get_tensor(k) for k in names if "classifier" in k and "weight" in k]
    assert head and head[0].is_floating_point() and head[0].shape[-1] == 64  # whole, unpacked
    card = (qlora_cls / "model" / "README.md").read_text()
    assert "| Base during training | quantized to 4 bits (nf4" in card
    assert "measured with the quantized base" in card


def test_evaluate_measures_the_adapter_on_the_quantized_base_again(
    qlora_cls, datasets_dir, tmp_path
):
    out = run(["evaluate", str(qlora_cls), "--dataset", str(datasets_dir / "cls")], tmp_path)
    again = json.loads((qlora_cls / Path(out.stdout.strip()).name).read_text())
    assert "model" in again  # evaluate's document
    assert again["metrics"]["accuracy"] == metrics_of(qlora_cls)["metrics"]["accuracy"]


def test_merge_uses_the_full_precision_base(qlora_cls, wide, datasets_dir, tmp_path):
    args = [*QLORA, *LEARN, "--quantize", "4bit", "--merge"]
    run(base_args(wide, datasets_dir / "cls", "merged", *args), tmp_path)
    merged = tmp_path / "merged"
    assert {"config.json", "model.safetensors"} <= model_files(merged)
    config = json.loads((merged / "model" / "config.json").read_text())
    assert "quantization_config" not in config and config["id2label"] == {"0": "neg", "1": "pos"}
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(merged / "model").eval()
    tok = AutoTokenizer.from_pretrained(merged / "model")
    with torch.no_grad():
        full = model(**tok(TEXT, return_tensors="pt")).logits.flatten().tolist()
    # the same training as the fixture's; its adapter applied to the full-precision base
    assert full == pytest.approx(logits(qlora_cls, "AutoPeftModelForSequenceClassification", TEXT))
    card = (merged / "model" / "README.md").read_text()
    assert "into which it is merged here" in card and "library_name: transformers" in card


def test_8bit_and_two_processes_and_exact_resume(wide, datasets_dir, tmp_path):
    doc = resumed_and_two_processes(
        wide, datasets_dir / "cls", tmp_path, *QLORA, "--quantize", "8bit"
    )
    assert doc["examples"] == 60 and "accuracy" in doc["metrics"]
    adapter = json.loads((tmp_path / "two" / "run.json").read_text())["adapter"]
    assert adapter["quantization"]["bits"] == 8


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--quantize", "4bit"], "quantize needs an adapter"),
        (["--quantize", "4bit", "--peft", "lora", "--from-scratch"], "from_scratch"),
    ],
)
def test_quantizing_without_an_adapter_is_refused(wide, datasets_dir, tmp_path, extra, message):
    proc = run(base_args(wide, datasets_dir / "cls", "out", *extra), tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_bitsandbytes_is_said_with_what_to_install(monkeypatch):
    import importlib.util

    from hubtool.errors import UsageError
    from hubtool.training import adapters

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real(name, *a),
    )
    with pytest.raises(UsageError) as info:
        adapters.quantization("4bit", "bf16")
    assert "bitsandbytes" in str(info.value) and "pip install" in info.value.hint
