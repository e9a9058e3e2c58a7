"""`hubtool finetune` and `hubtool evaluate` on tiny models built in the session."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import tiny, warm
from tests.conftest import client_env

HEAVY_TIMEOUT = 300


def run(
    args: list[str],
    cwd: Path,
    env_extra: dict | None = None,
    check: bool = True,
    hub_url: str = "http://127.0.0.1:9",
) -> subprocess.CompletedProcess[str]:
    env = client_env(hub_url, cwd / "hf_home")
    env.update(env_extra or {})
    proc = warm.run(
        [sys.executable, "-m", "hubtool", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=HEAVY_TIMEOUT,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def base_args(checkpoint: Path, dataset: Path | str, out: str, *extra: str) -> list[str]:
    return [
        "finetune",
        "--model",
        str(checkpoint),
        "--dataset",
        str(dataset),
        "--output-dir",
        out,
        "--no-progress",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        # each costs a second a run: tested where they are the subject (test_card_measured,
        # test_pages), left at their defaults there
        "--no-emissions",
        "--report-to",
        "none",
        *extra,
    ]


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


def test_text_classification_run_directory(checkpoint, datasets_dir, tmp_path):
    run(base_args(checkpoint, datasets_dir / "cls", "run", "--epochs", "6"), tmp_path)
    run_dir = tmp_path / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "text-classification"
    assert metrics["dataset"]["split"] == "validation" and metrics["examples"] == 60
    assert metrics["dataset"]["revision"].startswith("sha256:")
    assert metrics["metrics"]["accuracy"] >= 0.9
    assert set(metrics["details"]["per_class"]) == {"neg", "pos"}
    config = json.loads((run_dir / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert (run_dir / "model" / "model.safetensors").exists()
    assert (run_dir / "model" / "tokenizer.json").exists()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["labels"] == ["neg", "pos"]
    assert info["data"]["label_distribution"]["train"]["pos"] > 0
    assert info["versions"]["torch"] and info["hardware"]["processes"] == 1
    assert "hf_" not in (run_dir / "run.json").read_text()
    log = read_log(run_dir)
    steps = [e for e in log if "loss" in e]
    assert [e["step"] for e in steps] == list(range(1, len(steps) + 1))
    assert sum("eval" in e for e in log) == 6  # one evaluation per epoch
    assert len(list((run_dir / "checkpoints").iterdir())) == 2  # keep the last 2


def test_sentence_pairs_carved_validation_and_int_labels(checkpoint, datasets_dir, tmp_path):
    run(
        base_args(
            checkpoint,
            datasets_dir / "pairs.jsonl",
            "pairs",
            "--max-steps",
            "30",
            "--eval-every",
            "10",
        ),
        tmp_path,
    )
    info = json.loads((tmp_path / "pairs" / "run.json").read_text())
    assert info["columns"] == {"text": "sentence1", "text_pair": "sentence2", "label": "label"}
    validation = info["dataset"]["validation"]
    assert validation["carved_from"] == "train" and validation["share"] == 0.1
    assert info["data"]["validation_rows"] == 20 and info["labels"] == ["0", "1"]
    evals = [e for e in read_log(tmp_path / "pairs") if "eval" in e]
    assert [e["step"] for e in evals] == [10, 20, 30]


def test_multiclass_and_length_grouping_keeps_padding_low(checkpoint, datasets_dir, tmp_path):
    run(base_args(checkpoint, datasets_dir / "multi.jsonl", "multi", "--max-steps", "5"), tmp_path)
    info = json.loads((tmp_path / "multi" / "run.json").read_text())
    assert info["labels"] == ["0", "1", "2"]
    from hubtool.training.batching import LengthGroupedBatchSampler

    lengths = [len(t.split()) + 2 for t in tiny.texts(400)]
    grouped = list(LengthGroupedBatchSampler(lengths, 16, seed=1))
    plain = list(LengthGroupedBatchSampler(lengths, 16, seed=1, group=False))

    def ratio(batches):
        padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
        return padded / sum(lengths)

    assert ratio(grouped) <= 1.10 < ratio(plain)
    assert sorted(i for b in grouped for i in b) == list(range(400))  # every example once
    again = list(LengthGroupedBatchSampler(lengths, 16, seed=1))
    assert again == grouped  # same seed and epoch, same batches
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=1)
    sampler.set_epoch(1)
    assert list(sampler) != grouped  # a new order each epoch


def test_token_classification_entity_metrics(checkpoint, datasets_dir, tmp_path, hub):
    run(base_args(checkpoint, datasets_dir / "ner", "ner", "--epochs", "8"), tmp_path)
    metrics = json.loads((tmp_path / "ner" / "metrics.json").read_text())
    assert metrics["task"] == "token-classification"
    assert metrics["metrics"]["f1"] > 0.8
    assert {"PER", "LOC"} <= set(metrics["details"])
    config = json.loads((tmp_path / "ner" / "model" / "config.json").read_text())
    assert set(config["label2id"]) == {"B-LOC", "B-PER", "O"}
    from tests.test_card import passes_strict_check

    passes_strict_check(tmp_path / "ner", tmp_path, hub)


def test_fill_mask_domain_adaptation_perplexity(checkpoint, datasets_dir, tmp_path, hub):
    run(
        base_args(
            checkpoint,
            datasets_dir / "corpus.txt",
            "mlm",
            "--max-length",
            "32",
            "--epochs",
            "3",
            "--whole-word-mask",
        ),
        tmp_path,
    )
    log = read_log(tmp_path / "mlm")
    evals = [e["eval"]["perplexity"] for e in log if "eval" in e]
    assert evals[-1] < evals[0] < 200  # it learns the little language
    metrics = json.loads((tmp_path / "mlm" / "metrics.json").read_text())
    assert metrics["task"] == "fill-mask" and metrics["metric_for_best"] == "perplexity"
    assert metrics["metrics"]["perplexity"] == min(evals)
    from tests.test_card import passes_strict_check

    passes_strict_check(tmp_path / "mlm", tmp_path, hub)


def test_config_file_with_flags_winning(checkpoint, datasets_dir, tmp_path):
    (tmp_path / "hubtool.yaml").write_text(
        f"finetune:\n  model: {checkpoint}\n  dataset: {datasets_dir / 'cls'}\n"
        "  max-steps: 4\n  batch_size: 8\n  lr: 0.001\n  seed: 7\n"
    )
    run(
        [
            "finetune",
            "--config",
            "hubtool.yaml",
            "--seed",
            "8",
            "--output-dir",
            "cfg",
            "--no-progress",
        ],
        tmp_path,
    )
    resolved = json.loads((tmp_path / "cfg" / "run.json").read_text())["config"]
    assert (resolved["max_steps"], resolved["batch_size"], resolved["seed"]) == (4, 8, 8)
    (tmp_path / "hubtool.toml").write_text(
        f'model = "{checkpoint}"\ndataset = "{datasets_dir / "cls"}"\nmax_steps = 3\n'
    )
    run(["finetune", "--config", "hubtool.toml", "--output-dir", "toml", "--no-progress"], tmp_path)
    assert json.loads((tmp_path / "toml" / "run.json").read_text())["steps"]["done"] == 3


def test_kill_9_then_resume_matches_an_uninterrupted_run(checkpoint, datasets_dir, tmp_path):
    args = [
        "--max-steps",
        "60",
        "--save-every",
        "5",
        "--eval-every",
        "20",
        "--seed",
        "3",
        "--keep-checkpoints",
        "3",
    ]
    run(base_args(checkpoint, datasets_dir / "cls", "straight", *args), tmp_path)
    env = client_env("http://127.0.0.1:9", tmp_path / "hf_home")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hubtool",
            *base_args(checkpoint, datasets_dir / "cls", "broken", *args),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(
        (tmp_path / "broken" / "checkpoints").glob("step-*/hubtool_state.json")
    ):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads((tmp_path / "broken" / "run.json").read_text())
    assert done["status"] == "running"  # it really was interrupted
    refused = run(
        base_args(checkpoint, datasets_dir / "cls", "broken", *args), tmp_path, check=False
    )
    assert refused.returncode == 2 and "--resume" in refused.stderr
    run(base_args(checkpoint, datasets_dir / "cls", "broken", *args, "--resume"), tmp_path)
    for name in ("model/model.safetensors",):
        assert (tmp_path / "broken" / name).read_bytes() == (
            tmp_path / "straight" / name
        ).read_bytes()
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((tmp_path / "broken" / "metrics.json").read_text())
    assert a["metrics"] == b["metrics"] and a["step"] == b["step"]
    assert [e for e in read_log(tmp_path / "broken") if "eval" in e] == [
        e for e in read_log(tmp_path / "straight") if "eval" in e
    ]
    last = json.loads(
        (tmp_path / "broken" / "checkpoints" / "step-60" / "hubtool_state.json").read_text()
    )
    assert last["step"] == 60


def test_two_processes_count_each_validation_example_once(checkpoint, datasets_dir, tmp_path):
    args = ["--max-steps", "6", "--eval-every", "3", "--slices", "label"]
    launch_two(base_args(checkpoint, datasets_dir / "cls", "ddp", *args), tmp_path)
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["examples"] == 60  # not 64: padding duplicates are dropped
    # slices by the label column, read through each prediction's row gathered from both
    # processes: a class's accuracy is its recall only if every prediction found its row
    (factor,) = [f for f in metrics["by_slice"]["factors"] if f["name"] == "label"]
    for piece in factor["slices"]:
        per_class = metrics["details"]["per_class"][piece["value"]]
        assert piece["examples"] == per_class["support"]
        assert piece["metrics"]["accuracy"] == pytest.approx(per_class["recall"])
    info = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert info["hardware"]["processes"] == 2
    log = read_log(tmp_path / "ddp")
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4, 5, 6]  # main process only


def test_evaluate_command_with_bootstrap(checkpoint, datasets_dir, bad_data, tmp_path):
    run(base_args(checkpoint, datasets_dir / "cls", "run", "--epochs", "4"), tmp_path)
    out = run(
        [
            "evaluate",
            "run",
            "--dataset",
            str(datasets_dir / "cls"),
            "--split",
            "validation",
            "--bootstrap",
            "200",
        ],
        tmp_path,
    )
    assert out.stdout.strip() == "run/metrics.json"
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    low, high = doc["confidence_intervals"]["accuracy"]
    assert low <= doc["metrics"]["accuracy"] <= high
    assert doc["examples"] == 60 and doc["dataset"]["split"] == "validation"
    other = run(
        ["evaluate", "run/model", "--dataset", str(datasets_dir / "cls"), "--split", "train"],
        tmp_path,
    )
    assert json.loads(other.stdout)["examples"] == 240

    odd = run(["evaluate", "run", "--dataset", str(bad_data / "cls")], tmp_path, check=False)
    assert odd.returncode == 2 and "outside the model's label set: neutral" in odd.stderr


def test_finetune_from_a_hub_dataset_and_model(hub, alice, checkpoint, tmp_path):
    home = tmp_path / "hf_home"
    env = client_env(hub.url, home, alice.token)
    rows = tiny.classification_rows(120)
    code = f"""
import datasets
from huggingface_hub import HfApi
feats = datasets.Features({{"text": datasets.Value("string"),
                            "label": datasets.ClassLabel(names=["neg", "pos"])}})
rows = {rows!r}
ds = datasets.Dataset.from_list(rows, features=feats).train_test_split(test_size=0.25, seed=0)
datasets.DatasetDict({{"train": ds["train"], "validation": ds["test"]}}).push_to_hub(
    "{alice.name}/sentiment")
HfApi().upload_folder(folder_path="{checkpoint}", repo_id="{alice.name}/tiny-bert",
                      repo_type="model") if HfApi().create_repo("{alice.name}/tiny-bert") else 0
"""
    proc = warm.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run(
        [
            "finetune",
            "--model",
            f"{alice.name}/tiny-bert",
            "--dataset",
            f"{alice.name}/sentiment",
            "--max-steps",
            "6",
            "--output-dir",
            "hubrun",
            "--no-progress",
        ],
        tmp_path,
        env_extra={"HF_TOKEN": alice.token},
        hub_url=hub.url,
    )
    info = json.loads((tmp_path / "hubrun" / "run.json").read_text())
    sha = hub.api(alice).dataset_info(f"{alice.name}/sentiment").sha
    assert info["dataset"]["id"] == f"{alice.name}/sentiment"
    assert info["dataset"]["revision"] == sha
    assert (
        info["base_model"]["revision"] == hub.api(alice).model_info(f"{alice.name}/tiny-bert").sha
    )
    assert info["labels"] == ["neg", "pos"]
    assert alice.token not in (tmp_path / "hubrun" / "run.json").read_text()


# -- errors -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def bad_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    tiny.write_jsonl(root / "cls" / "train.jsonl", tiny.classification_rows(40))
    tiny.write_jsonl(
        root / "cls" / "validation.jsonl",
        [{"text": "odd one", "label": "neutral"}, *tiny.classification_rows(5)],
    )
    tiny.write_jsonl(
        root / "nontext.jsonl", [{"text": "fine", "label": 0}, {"text": 5, "label": 1}] * 10
    )
    (root / "empty").mkdir()
    (root / "empty" / "train.csv").write_text("text,label\na b,0\nc d,1\n")
    (root / "empty" / "validation.csv").write_text("text,label\n")
    return root


def test_errors_are_clear_and_leave_nothing_half_written(
    checkpoint, datasets_dir, bad_data, tmp_path
):
    no_tokenizer = tmp_path / "no-tok"
    shutil.copytree(checkpoint, no_tokenizer)
    for f in no_tokenizer.glob("*token*"):
        f.unlink()
    cases = [
        (["--text-column", "body"], datasets_dir / "cls", "'body' does not exist"),
        ([], bad_data / "cls", "outside the training label set: neutral"),
        ([], bad_data / "nontext.jsonl", "non-text value"),
        ([], bad_data / "empty", "split is empty"),
        (["--max-length", "4096"], datasets_dir / "cls", "beyond the model's limit of 64"),
        (["--lr", "-1"], datasets_dir / "cls", "lr must be between 0 and 1"),
        (["--eval-every", "often"], datasets_dir / "cls", "eval_every must be"),
        (["--train-split", "nope"], datasets_dir / "cls", "no split 'nope'"),
    ]
    for i, (extra, dataset, needle) in enumerate(cases):
        proc = run(base_args(checkpoint, dataset, f"e{i}", *extra), tmp_path, check=False)
        assert proc.returncode == 2, (needle, proc.stderr[-2000:])
        assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / f"e{i}" / "model").exists()
    proc = run(base_args(no_tokenizer, datasets_dir / "cls", "notok"), tmp_path, check=False)
    assert proc.returncode == 2 and "Cannot load a tokenizer" in proc.stderr


def test_task_the_architecture_cannot_do(tmp_path, datasets_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.tiny import build_checkpoint

    folder = build_checkpoint(tmp_path / "gpt")
    for f in folder.glob("model.safetensors"):
        f.unlink()
    (folder / "config.json").unlink()
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=150)).save_pretrained(
        folder
    )
    proc = run(
        base_args(folder, datasets_dir / "corpus.txt", "gpt", "--task", "fill-mask"),
        tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "cannot be trained for fill-mask" in proc.stderr


def test_schedule_accumulation_and_early_stopping(checkpoint, datasets_dir, tmp_path):
    run(
        base_args(
            checkpoint,
            datasets_dir / "cls",
            "sched",
            "--max-steps",
            "40",
            "--grad-accum",
            "2",
            "--scheduler",
            "cosine",
            "--warmup-ratio",
            "0.25",
            "--eval-every",
            "2",
            "--early-stopping",
            "1",
            "--metric-for-best",
            "f1_macro",
            "--lr",
            "1e-6",
        ),
        tmp_path,
    )
    log = read_log(tmp_path / "sched")
    steps = [e for e in log if "loss" in e]
    lrs = [e["lr"] for e in steps]
    assert lrs[0] < lrs[1]  # warming up
    evals = [e for e in log if "eval" in e]
    assert len(steps) < 40  # stopped early: f1_macro stopped improving at a tiny lr
    assert steps[-1]["step"] == evals[-1]["step"]
    metrics = json.loads((tmp_path / "sched" / "metrics.json").read_text())
    assert metrics["metric_for_best"] == "f1_macro"
    info = json.loads((tmp_path / "sched" / "run.json").read_text())
    assert info["throughput"]["samples"] == len(steps) * 2 * 16  # two batches per step


def test_an_unreachable_dataset_id_is_said_plainly(checkpoint, tmp_path):
    proc = run(base_args(checkpoint, "nobody/nothing", "out"), tmp_path, check=False,
               env_extra={"HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'nobody/nothing' cannot be fetched" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr


def test_unknown_config_key_and_missing_tensorboard(checkpoint, datasets_dir, tmp_path):
    (tmp_path / "bad.yaml").write_text(f"model: {checkpoint}\ndataset: x\nlearning_rate: 1\n")
    proc = run(["finetune", "--config", "bad.yaml"], tmp_path, check=False)
    assert proc.returncode == 2 and "Unknown setting 'learning_rate'" in proc.stderr
    assert "Did you mean" in proc.stderr or "Valid settings" in proc.stderr
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        proc = run(
            base_args(checkpoint, datasets_dir / "cls", "tb", "--report-to", "tensorboard"),
            tmp_path,
            check=False,
        )
        assert proc.returncode == 2 and "pip install tensorboard" in proc.stderr


def test_roberta_checkpoint_and_csv_data(tmp_path):
    checkpoint = tiny.build_checkpoint(tmp_path / "tiny-roberta", kind="roberta")
    rows = tiny.classification_rows(80)
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("review,sentiment\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows))
    run(
        base_args(
            checkpoint,
            csv_path,
            "rob",
            "--max-steps",
            "4",
            "--text-column",
            "review",
            "--label-column",
            "sentiment",
        ),
        tmp_path,
    )
    info = json.loads((tmp_path / "rob" / "run.json").read_text())
    assert info["config"]["max_length"] == 64  # 66 positions, 2 reserved by RoBERTa
    assert info["columns"]["text"] == "review" and info["labels"] == ["neg", "pos"]
    assert info["dataset"]["validation"]["stratified"] is False  # string labels


def resumed_and_two_processes(model: Path, dataset: Path, cwd: Path, *extra: str) -> dict:
    """Train 8 steps; again from its step-4 checkpoint, asserting the resumed steps log the
    same as the uninterrupted ones; then on two processes. Returns the two-process
    metrics.json (the caller checks each example is counted once)."""
    args = ["--max-steps", "8", "--save-every", "4", "--eval-every", "4", "--seed", "2", *extra]
    run(base_args(model, dataset, "straight", *args), cwd)
    shutil.copytree(cwd / "straight", cwd / "resumed")
    shutil.rmtree(cwd / "resumed" / "checkpoints" / "step-8")
    run(base_args(model, dataset, "resumed", *args, "--resume"), cwd)
    logs = [[e for e in read_log(cwd / n) if e["step"] > 4] for n in ("straight", "resumed")]
    assert logs[0] == logs[1] and len(logs[0]) >= 5
    launch_two(base_args(model, dataset, "two", *args, "--batch-size", "8"), cwd)
    return json.loads((cwd / "two" / "metrics.json").read_text())


def launch_two(
    args: list[str], cwd: Path, *launcher: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`accelerate launch` with two CPU processes (gloo), as a user runs it; ``launcher``
    adds flags (``--use_fsdp``…) in place of ``--multi_gpu``; ``check``: it must succeed."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate
    kind = list(launcher) or ["--multi_gpu"]
    launch = [accelerate, "launch", *kind, "--num_processes", "2", "--num_machines", "1"]
    proc = subprocess.run(
        [*launch, "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "hubtool", *args],
        cwd=cwd,
        env=client_env("http://127.0.0.1:9", cwd / "hf_home"),
        capture_output=True,
        text=True,
        timeout=HEAVY_TIMEOUT,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_two_processes_train_the_epochs_asked_with_the_same_schedule(
    checkpoint, datasets_dir, tmp_path
):
    """Same global batch (1 × 16 vs 2 × 8), --epochs 1: the same steps per epoch, one epoch,
    and a learning rate that reaches 0 only at the last step."""
    common = ["--epochs", "1", "--seed", "5"]
    one = base_args(checkpoint, datasets_dir / "cls", "one", *common)
    run(one, tmp_path)
    launch_two(
        base_args(checkpoint, datasets_dir / "cls", "two", *common, "--batch-size", "8"), tmp_path
    )
    steps = {}
    for name in ("one", "two"):
        info = json.loads((tmp_path / name / "run.json").read_text())
        steps[name] = info["steps"]
        log = [e for e in read_log(tmp_path / name) if "loss" in e]
        assert [e["step"] for e in log] == list(range(1, info["steps"]["per_epoch"] + 1))
        assert {e["epoch"] for e in log} == {0}  # one epoch, not two
        assert all(e["lr"] > 0 for e in log[:-1]) and log[-1]["lr"] == 0
    assert steps["one"] == steps["two"] == {"total": 15, "per_epoch": 15, "done": 15}
    lrs = [[e["lr"] for e in read_log(tmp_path / n) if "loss" in e] for n in ("one", "two")]
    assert lrs[0] == pytest.approx(lrs[1])


def test_fill_mask_from_scratch_is_reproducible_and_carded_as_such(datasets_dir, tmp_path):
    """Two runs with one seed, each with a tokenizer learnt anew and whole-word masking:
    the same weights and metrics. The card says the model was trained from scratch."""
    args = ["--task", "fill-mask", "--max-length", "32", "--max-steps", "12", "--eval-every", "6"]
    for name in ("a", "b"):
        init = tiny.build_checkpoint(tmp_path / f"init-{name}", weights=False)
        extra = [*args, "--whole-word-mask", "--from-scratch", "--seed", "11"]
        run(base_args(init, datasets_dir / "corpus.txt", name, *extra), tmp_path)
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("a", "b"))
    assert a["metrics"] == b["metrics"]
    weights = [(tmp_path / n / "model" / "model.safetensors").read_bytes() for n in ("a", "b")]
    assert weights[0] == weights[1]
    card = (tmp_path / "a" / "model" / "README.md").read_text()
    head, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "base_model" not in head
    assert "trained from scratch" in body and "fine-tuned version" not in body
    assert "a local checkpoint" not in body


def test_weights_missing_suggests_from_scratch(datasets_dir, tmp_path):
    init = tiny.build_checkpoint(tmp_path / "init", weights=False)
    proc = run(
        base_args(init, datasets_dir / "corpus.txt", "x", "--task", "fill-mask"),
        tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "--from-scratch" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


FSDP = ("--use_fsdp", "--fsdp_version", "2")


def test_fsdp_on_two_cpu_processes_resumes_exactly_and_writes_one_model(
    checkpoint, datasets_dir, tmp_path
):
    """`accelerate launch --use_fsdp --fsdp_version 2` on gloo: the weights are sharded over
    the two processes, the run checkpoints, a resume from the middle trains the same steps
    as the uninterrupted run, and model/ is one whole model any user can load."""
    from transformers import AutoModelForSequenceClassification

    args = ["--max-steps", "8", "--save-every", "4", "--eval-every", "4", "--seed", "3"]
    args += ["--batch-size", "8", "--keep-checkpoints", "2"]
    launch_two(base_args(checkpoint, datasets_dir / "cls", "straight", *args), tmp_path, *FSDP)
    straight = tmp_path / "straight"
    info = json.loads((straight / "run.json").read_text())
    assert info["hardware"]["distributed"] == "FSDP" and info["hardware"]["processes"] == 2
    shutil.copytree(straight, tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-8")
    resumed = launch_two(
        base_args(checkpoint, datasets_dir / "cls", "resumed", *args, "--resume"), tmp_path, *FSDP
    )
    assert "Resumed from" in resumed.stderr and "step 4" in resumed.stderr
    steps = [[e for e in read_log(tmp_path / n) if e["step"] > 4] for n in ("straight", "resumed")]
    assert steps[0] == steps[1] and len(steps[0]) >= 5  # 4 losses and an evaluation
    files = sorted(p.name for p in (straight / "model").iterdir())
    assert [f for f in files if f.endswith(".safetensors")] == ["model.safetensors"]
    model = AutoModelForSequenceClassification.from_pretrained(straight / "model")
    assert model.num_labels == 2 and not list((tmp_path / "resumed").glob("**/*rank1*"))


def test_fsdp_version_1_on_cpus_is_refused_with_the_flag_to_use(checkpoint, datasets_dir, tmp_path):
    args = base_args(checkpoint, datasets_dir / "cls", "v1", "--max-steps", "2")
    proc = launch_two(args, tmp_path, "--use_fsdp", check=False)
    assert proc.returncode != 0
    assert "Error: FSDP version 1 cannot checkpoint on CPU processes" in proc.stderr
    assert "Add --fsdp_version 2" in proc.stderr
    assert not (tmp_path / "v1" / "checkpoints").exists()


def test_a_refused_launch_stops_every_process_with_the_same_message(
    checkpoint, datasets_dir, tmp_path
):
    """A run folder that holds a run: each process says so; none reports a hubtool bug."""
    run(base_args(checkpoint, datasets_dir / "cls", "taken", "--max-steps", "2"), tmp_path)
    args = base_args(checkpoint, datasets_dir / "cls", "taken", "--max-steps", "2")
    proc = launch_two(args, tmp_path, check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("taken already holds a run") == 2
    assert "bug in hubtool" not in proc.stderr
