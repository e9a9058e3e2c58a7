"""The speed decisions a user does not have to make: precision, compilation, the CPU fast
paths (dropout masks, kept memory, the masked-LM projection) and what run.json and the card
say about them."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
import torch

from hubtool.core.launch import Launch
from hubtool.training import allocator, compiling, dropout, precision
from hubtool.training.config import SCHEDULERS
from tests.conftest import client_env, run_python
from tests.test_finetune import base_args, run


# -- precision ---------------------------------------------------------------------------------
@pytest.mark.parametrize("forced", ["no", "bf16", "fp16"])
def test_a_forced_precision_is_used_as_asked(forced, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    chosen = precision.choose(forced, tmp_path)
    assert (chosen.requested, chosen.used) == (forced, forced)
    assert f"--mixed-precision {forced}" in chosen.reason


def test_forced_fp16_on_a_cpu_is_refused_and_emulated_bf16_is_said(monkeypatch, tmp_path):
    from hubtool.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        precision.choose("fp16", tmp_path)
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: [])
    assert "emulated and slower" in precision.choose("bf16", tmp_path).reason


def test_auto_on_a_cpu_without_bf16_instructions_trains_in_fp32(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: [])
    monkeypatch.setattr(precision, "probe", lambda: pytest.fail("no probe without the ISA"))
    chosen = precision.choose("auto", tmp_path)
    assert chosen.used == "no" and "no native bf16" in chosen.reason


@pytest.mark.parametrize(("bf16", "used"), [(900.0, "bf16"), (230.0, "no")])
def test_auto_on_a_bf16_cpu_follows_the_probe(monkeypatch, tmp_path, bf16, used):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: ["AVX512-BF16"])
    monkeypatch.setattr(precision, "probe", lambda: {"fp32": 225.0, "bf16": bf16, "threads": 2})
    chosen = precision.choose("auto", tmp_path)
    assert chosen.used == used
    assert "AVX512-BF16" in chosen.reason and f"{bf16:.0f} GFLOP/s" in chosen.reason


def test_the_probe_runs_once_per_machine_and_survives_a_damaged_cache(monkeypatch, tmp_path):
    calls = []

    def fake_probe():
        calls.append(1)
        return {"fp32": 200.0, "bf16": 800.0, "threads": 2}

    monkeypatch.setattr(precision, "probe", fake_probe)
    assert precision.cached_probe(tmp_path)["bf16"] == 800.0
    assert precision.cached_probe(tmp_path)["bf16"] == 800.0
    assert len(calls) == 1
    monkeypatch.setattr(precision, "machine_key", lambda: "another-machine")
    precision.cached_probe(tmp_path)
    assert len(calls) == 2  # another CPU, thread count or torch: probed again
    (tmp_path / precision.PROBE_FILE).write_text("{not json")
    assert precision.cached_probe(tmp_path)["fp32"] == 200.0 and len(calls) == 3


def test_the_real_probe_measures_both_dtypes():
    result = precision.probe(rounds=1)
    assert result["fp32"] > 0 and result["bf16"] > 0 and result["threads"] >= 1


@pytest.mark.parametrize(
    ("bf16_ok", "used", "words"), [(True, "bf16", "natively"), (False, "fp16", "loss scaling")]
)
def test_auto_on_a_gpu_picks_bf16_or_fp16_with_loss_scaling(monkeypatch, bf16_ok, used, words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_ok)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Some GPU")
    chosen = precision.choose("auto", None)
    assert chosen.used == used and words in chosen.reason and "Some GPU" in chosen.reason


# -- compilation -------------------------------------------------------------------------------
def test_compile_auto_is_off_on_cpus_and_short_gpu_runs_and_on_for_long_gpu_runs():
    assert not compiling.choose("auto", "cpu", 10_000).used
    assert not compiling.choose("auto", "cuda:0", 100).used
    long = compiling.choose("auto", "cuda:0", 5_000)
    assert long.used and long.pad_multiple == 8
    assert compiling.choose("yes", "cpu", 1).used and not compiling.choose("no", "cuda", 9e9).used
    assert compiling.choose("no", "cpu", 1).pad_multiple is None


# -- dropout -----------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_fast_dropout_keeps_the_asked_share_and_scales_it(p):
    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    y = dropout.fast_dropout(x, p)
    kept = (y != 0).float().mean().item()
    assert kept == pytest.approx(1 - p, abs=0.005)
    values = torch.unique(y).tolist()
    assert values[0] == 0.0 and values[1:] == [pytest.approx(1 / (1 - p))]
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient passes exactly where kept


def test_fast_dropout_is_reproducible_and_off_in_evaluation():
    layer = dropout.FastDropout(0.2)
    x = torch.randn(64, 48)
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    assert torch.equal(a, layer(x))
    layer.eval()
    assert torch.equal(layer(x), x)


def test_attention_with_dropout_is_softmax_then_the_mask_then_values():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module = torch.nn.Module()
    module.is_causal = False
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[0, :, :, 3:] = False
    torch.manual_seed(1)
    out, _ = dropout.attention(module, q, k, v, mask, dropout=0.3, scaling=0.5)
    torch.manual_seed(1)
    scores = (q @ k.transpose(-1, -2) * 0.5).masked_fill(~mask, torch.finfo(q.dtype).min)
    probs = torch.softmax(scores, -1) * dropout.keep_mask((2, 3, 5, 5), 0.3) / 0.7
    assert torch.allclose(out, (probs @ v).transpose(1, 2), atol=1e-6)
    same, _ = dropout.attention(module, q, k, v, mask, dropout=0.0, scaling=0.5)
    stock, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.0, scaling=0.5)
    assert torch.equal(same, stock)  # no dropout: PyTorch's SDPA itself


def test_speed_up_changes_training_only_and_saves_a_stock_model(checkpoint, tmp_path):
    from transformers import AutoModelForMaskedLM

    stock = AutoModelForMaskedLM.from_pretrained(checkpoint, attn_implementation="sdpa")
    fast = AutoModelForMaskedLM.from_pretrained(checkpoint, attn_implementation="sdpa")
    assert dropout.speed_up(fast)
    assert any(isinstance(m, dropout.FastDropout) for m in fast.modules())
    ids = torch.randint(5, 100, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0  # padding must stay masked out
    mask[2, 3:] = 0
    with torch.inference_mode():
        a = stock.eval()(input_ids=ids, attention_mask=mask).logits
        b = fast.eval()(input_ids=ids, attention_mask=mask).logits
        assert torch.equal(a, b)
        fast.train()  # training path with dropout: padding still masked out
        changed = ids.clone()
        changed[0, 7:] = 1  # what stands in the padding does not matter
        torch.manual_seed(0)
        x = fast(input_ids=ids, attention_mask=mask).logits
        torch.manual_seed(0)
        y = fast(input_ids=changed, attention_mask=mask).logits
        assert torch.allclose(x[0, :7], y[0, :7], atol=1e-5)
    fast.train()
    loss = fast(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss)
    fast.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert dropout.ATTENTION not in json.dumps(config)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "saved")
    assert reloaded.config._attn_implementation == "sdpa"


# -- memory ----------------------------------------------------------------------------------
def test_freed_memory_is_kept_unless_the_user_chose_an_allocator(monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    if sys.platform.startswith("linux"):
        assert "glibc" in (allocator.keep_freed_memory() or "")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")
    assert allocator.keep_freed_memory() is None
    monkeypatch.delenv("LD_PRELOAD")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert allocator.keep_freed_memory() is None


# -- masked LM ---------------------------------------------------------------------------------
def _mlm_batch(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, model.config.vocab_size, (4, 16), generator=gen)
    labels = torch.full_like(ids, -100)
    chosen = torch.rand(ids.shape, generator=gen) < 0.15
    chosen[:, 0] = True
    labels[chosen] = ids[chosen]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_masked_lm_projects_only_masked_positions_with_the_same_loss_and_gradients(kind, tmp_path):
    from transformers import AutoModelForMaskedLM

    from hubtool.tasks import get
    from tests.tiny import build_checkpoint

    folder = build_checkpoint(tmp_path / kind, kind)
    stock = AutoModelForMaskedLM.from_pretrained(folder).eval()
    fast = AutoModelForMaskedLM.from_pretrained(folder).eval()
    batch = _mlm_batch(stock)
    said = get("fill-mask").train_faster(fast, batch)
    assert said and "masked positions" in said
    other = _mlm_batch(stock, seed=1)
    a, b = stock(**other).loss, fast(**other).loss
    assert torch.allclose(a, b, atol=1e-5)
    a.backward()
    b.backward()
    for (name, p), q in zip(stock.named_parameters(), fast.parameters(), strict=True):
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_a_head_spread_over_several_modules_keeps_the_stock_forward(tmp_path):
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    from hubtool.tasks import get

    config = DistilBertConfig(vocab_size=120, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    model = DistilBertForMaskedLM(config).eval()
    before = model.forward
    assert get("fill-mask").train_faster(model, _mlm_batch(model)) is None
    assert model.forward == before


# -- sequence classification: the last layer at the first position --------------------------
def _classification_batch(vocab: int, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (4, 12), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padded rows: the first position must still attend to real tokens only
    mask[3, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 1])}


def _classifier(kind: str, attention: str = "sdpa"):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    sizes = {"vocab_size": 90, "num_labels": 3, "pad_token_id": 1, "max_position_embeddings": 40}
    if kind == "distilbert":
        sizes |= {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64}
    else:
        sizes |= {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
        sizes |= {"intermediate_size": 64} if kind != "gpt2" else {}
    config = AutoConfig.for_model(kind, **sizes)
    config._attn_implementation = attention
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config)


@pytest.mark.parametrize(
    ("kind", "attention"),
    [
        ("bert", "sdpa"),
        ("roberta", "eager"),
        ("electra", "sdpa"),
        ("distilbert", "sdpa"),
        ("distilbert", "eager"),
    ],
)
def test_classification_computes_the_last_layer_at_the_first_position_only(kind, attention):
    from hubtool.tasks import get

    stock, fast = _classifier(kind, attention), _classifier(kind, attention)
    said = get("text-classification").train_faster(fast, _classification_batch(90))
    assert said and "first position only" in said
    assert fast.training  # the check ran in eval mode and put training mode back
    stock.eval(), fast.eval()
    shapes = []
    last = next(
        m for m in fast.modules() if isinstance(getattr(m, "layer", None), torch.nn.ModuleList)
    ).layer[-1]
    last.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    other = _classification_batch(90, seed=1)
    a, b = stock(**other), fast(**other)
    assert shapes == [(4, 1, 32)]  # the last layer ran for one position per row
    assert torch.allclose(a.logits, b.logits, atol=1e-5)
    a.loss.backward()
    b.loss.backward()
    for (name, p), q in zip(stock.named_parameters(), fast.parameters(), strict=True):
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, atol=1e-5), name
    # Asking for hidden states takes the stock path: every position, every layer.
    hidden = fast(**other, output_hidden_states=True).hidden_states
    assert hidden[-1].shape[1] == 12
    assert torch.allclose(hidden[-1], stock(**other, output_hidden_states=True).hidden_states[-1])
    assert list(fast.state_dict()) == list(stock.state_dict())


def test_a_head_that_reads_other_positions_keeps_the_stock_forward():
    from hubtool.tasks import get

    model = _classifier("bert")
    pooler = model.bert.pooler
    pooler.forward = lambda hidden: torch.tanh(pooler.dense(hidden.mean(dim=1)))  # mean pooling
    before_model, before_layer = model.forward, model.bert.encoder.layer[-1].forward
    assert get("text-classification").train_faster(model, _classification_batch(90)) is None
    assert model.forward == before_model
    assert model.bert.encoder.layer[-1].forward == before_layer
    decoder = _classifier("gpt2")  # reads the last real token: no encoder layer to cut
    assert get("text-classification").train_faster(decoder, _classification_batch(90)) is None


# -- batching ---------------------------------------------------------------------------------
def test_the_sampler_reads_a_datasets_column_once():
    import datasets

    from hubtool.training.batching import LengthGroupedBatchSampler

    column = datasets.Dataset.from_dict({"length": [i % 37 for i in range(500)]})["length"]
    from_column = LengthGroupedBatchSampler(column, 16, 0)
    from_list = LengthGroupedBatchSampler([i % 37 for i in range(500)], 16, 0)
    assert isinstance(from_column.lengths, list)
    assert list(from_column) == list(from_list)


# -- launch ----------------------------------------------------------------------------------
def test_launch_reads_fsdp_from_the_launcher():
    launched = Launch.from_env(
        {"RANK": "1", "WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}
    )
    assert launched == Launch(1, 2, True, 2)
    assert Launch.from_env({"FSDP_VERSION": "two"}) == Launch()


# -- what the run says -----------------------------------------------------------------------
def test_a_default_run_records_its_precision_and_speed_paths_and_the_card_says_so(
    checkpoint, datasets_dir, tmp_path
):
    run(base_args(checkpoint, datasets_dir / "cls", "out", "--max-steps", "6"), tmp_path)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    chosen = info["precision"]
    assert chosen["requested"] == "auto" and chosen["used"] in ("no", "bf16") and chosen["reason"]
    assert info["compile"]["used"] is False and "compile" in info["compile"]["reason"]
    assert info["speed"]["attention"] == "sdpa" and info["speed"]["fast_cpu_dropout"] is True
    share = info["throughput"]["outside_model_share"]
    assert 0 <= share < 0.5
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    label = "fp32" if chosen["used"] == "no" else "bf16 autocast"
    assert f"Precision: {label}" in card and "chosen automatically" in card
    assert chosen["reason"].split(";")[0] in card


@pytest.mark.slow  # inductor compiles the forward, backward and evaluation: 1-2 min on 2 cores
def test_a_compiled_run_pads_to_multiples_of_8_and_says_how_long_it_compiled(
    checkpoint, datasets_dir, tmp_path
):
    args = ["--max-steps", "4", "--compile", "yes", "--mixed-precision", "no"]
    run(base_args(checkpoint, datasets_dir / "cls", "out", *args, "--eval-every", "4"), tmp_path)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["compile"]["used"] is True and info["compile"]["seconds"] > 0
    t = info["throughput"]
    assert t["computed_tokens"] % 8 == 0 and t["computed_tokens"] >= t["real_tokens"]
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file()


def test_resume_elsewhere_records_a_precision_change(checkpoint, datasets_dir, tmp_path):
    args = ["--max-steps", "8", "--save-every", "4", "--eval-every", "4"]
    run(base_args(checkpoint, datasets_dir / "cls", "out", *args), tmp_path)
    path = tmp_path / "out" / "run.json"
    info = json.loads(path.read_text())
    other = "bf16" if info["precision"]["used"] == "no" else "no"
    info["precision"]["used"] = other  # as if trained on a machine that chose the other one
    path.write_text(json.dumps(info))
    shutil.rmtree(tmp_path / "out" / "checkpoints" / "step-8")
    done = run(base_args(checkpoint, datasets_dir / "cls", "out", *args, "--resume"), tmp_path)
    assert f"precision: {other} -> " in done.stderr
    resumes = json.loads(path.read_text())["resumes"]
    assert resumes[-1]["changed"]["precision"][0] == other


def test_bad_speed_settings_are_one_clear_error(checkpoint, datasets_dir, tmp_path):
    bad = run(
        base_args(checkpoint, datasets_dir / "cls", "out", "--compile", "sometimes"),
        tmp_path,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    (tmp_path / "hubtool.yaml").write_text("mixed_precision: fp8\n")
    cfg = run(
        [*base_args(checkpoint, datasets_dir / "cls", "out"), "--config", "hubtool.yaml"],
        tmp_path,
        check=False,
    )
    assert cfg.returncode != 0 and "mixed_precision must be one of" in cfg.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", SCHEDULERS)
def test_schedules_are_transformers_own(name):
    """hubtool's schedules (not imported from transformers: that import brings peft and
    bitsandbytes into every run) give transformers' multipliers at every step."""
    import torch
    from transformers import get_scheduler

    from hubtool.training import schedules

    def lrs(make) -> list[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
        scheduler = make(optimizer)
        out = []
        for _ in range(60):
            out.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        return out

    ours = lrs(lambda opt: schedules.make(name, opt, 7, 50))
    theirs = lrs(lambda opt: get_scheduler(name, opt, num_warmup_steps=7, num_training_steps=50))
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)


def test_a_plain_run_never_imports_peft(checkpoint, datasets_dir, tmp_path):
    """peft (and bitsandbytes with it) costs seconds to import: only --peft runs load it."""
    code = (
        "import sys\nfrom hubtool.cli import main\n"
        f"sys.argv = ['hubtool', 'finetune', '--model', {str(checkpoint)!r}, '--dataset', "
        f"{str(datasets_dir / 'cls')!r}, '--output-dir', 'out', '--max-steps', '2', "
        "'--no-progress', '--no-emissions', '--report-to', 'none']\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
        "print(sorted(m for m in ('peft', 'bitsandbytes') if m in sys.modules))\n"
    )
    proc = run_python(code, client_env("http://127.0.0.1:9", tmp_path / "hf_home"), tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
